// The public status map: requests as vector tiles (clusters below zoom 14, points above), filters,
// and a status card for the clicked request. Keyboard: focus the map, arrows pan, +/- zoom,
// Enter opens the request nearest the centre.
import { STATUS_COLOURS, addDistricts, baseStyle, cityBounds, day, el, nice, requestTiles } from "./public-common.js";

const container = document.getElementById("map");
const settings = JSON.parse(container.dataset.settings);
const form = document.getElementById("filters");
const card = document.getElementById("card");

function filterQuery() {
  const data = new FormData(form);
  const q = new URLSearchParams();
  const category = data.get("category") || "";
  if (category.startsWith("group:")) q.set("group", category.slice(6));
  if (category.startsWith("service:")) q.set("service", category.slice(8));
  const statuses = data.getAll("status");
  if (statuses.length > 0 && statuses.length < form.querySelectorAll("input[name=status]").length) q.set("status", statuses.join(","));
  for (const name of ["since", "until", "recent_days"]) if (data.get(name)) q.set(name, data.get(name));
  return "?" + q.toString();
}

const map = new maplibregl.Map({ container, style: baseStyle(settings), center: [-71.06, 42.32], zoom: 11,
                                 hash: true, attributionControl: false });
window.publicMap = map;   // for tests and the curious
map.addControl(new maplibregl.NavigationControl(), "top-right");
map.addControl(new maplibregl.GeolocateControl({ trackUserLocation: false }), "top-right");

map.on("load", async () => {
  addDistricts(map, settings);
  map.addSource("requests", { type: "vector", tiles: requestTiles(filterQuery()), maxzoom: 16 });
  map.addLayer({ id: "request-clusters", type: "circle", source: "requests", "source-layer": "requests",
                 filter: ["has", "count"],
                 paint: { "circle-color": ["case", [">", ["get", "open"], 0], "#cf222e", "#6e7781"],
                          "circle-opacity": 0.6, "circle-stroke-color": "#fff", "circle-stroke-width": 0.5,
                          "circle-radius": ["interpolate", ["linear"], ["get", "count"], 1, 2.5, 20, 6, 300, 13] } });
  map.addLayer({ id: "request-points", type: "circle", source: "requests", "source-layer": "requests",
                 filter: ["has", "status"],
                 paint: { "circle-color": STATUS_COLOURS, "circle-stroke-color": ["case", ["get", "coarsened"], "#8250df", "#fff"],
                          "circle-stroke-width": ["case", ["get", "coarsened"], 3, 1],
                          "circle-radius": ["interpolate", ["linear"], ["zoom"], 14, 4, 18, 8] } });
  if (!location.hash) map.fitBounds(await cityBounds(), { padding: 10, animate: false });
  container.dataset.ready = "true";
});

for (const layer of ["request-points", "request-clusters"]) {
  map.on("mouseenter", layer, () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", layer, () => { map.getCanvas().style.cursor = ""; });
}
map.on("click", "request-points", (e) => {   // every request drawn under the finger, not just the top one
  const { x, y } = e.point;
  choose(map.queryRenderedFeatures([[x - 8, y - 8], [x + 8, y + 8]], { layers: ["request-points"] }));
});
map.on("click", "request-clusters", (e) => map.easeTo({ center: e.lngLat, zoom: Math.max(map.getZoom() + 2, 14) }));

container.addEventListener("keydown", (e) => {
  if (e.key !== "Enter") return;
  const centre = map.project(map.getCenter());
  const found = map.queryRenderedFeatures([[centre.x - 40, centre.y - 40], [centre.x + 40, centre.y + 40]],
                                          { layers: ["request-points"] });
  if (found.length) choose(found);
  else if (map.getZoom() < 14) map.easeTo({ zoom: 14 });
});

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const none = new FormData(form).getAll("status").length === 0;
  for (const layer of ["request-points", "request-clusters"]) map.setLayoutProperty(layer, "visibility", none ? "none" : "visible");
  map.getSource("requests").setTiles(requestTiles(filterQuery()));
});

// One request: its card. Several at one spot (a point shared by a few tickets, or points a finger
// cannot tell apart): a short list to pick from. Features repeat across tile edges, hence the Map.
function choose(features) {
  const found = [...new Map(features.map((f) => [f.properties.public_id, f.properties])).values()];
  if (found.length === 1) { showCard(found[0].public_id); return; }
  if (!found.length) return;
  const pick = (p) => el("li", {}, el("button", { type: "button", class: "link", "data-id": p.public_id },
                                      `${p.service_name} — ${nice(p.status)}, ${day(p.requested)}`));
  const shown = found.slice(0, 12);
  showInCard(el("h2", { id: "card-h" }, `${found.length} requests here`),
             el("ul", { class: "pick-list" }, ...shown.map(pick)),
             ...(found.length > shown.length ? [el("p", { class: "muted" }, "Zoom in to see the others.")] : []));
  card.querySelectorAll("button[data-id]").forEach((b) => b.addEventListener("click", () => showCard(b.dataset.id)));
}

// The card lives in the side panel; on a phone the panel is below the map and the filters, so the card
// opens as a sheet over the bottom of the screen instead (CSS), with a Close button.
const narrow = window.matchMedia("(max-width: 700px)");
function showInCard(...children) {
  const close = el("button", { type: "button", class: "sheet-close secondary" }, "Close");
  close.addEventListener("click", closeCard);
  card.replaceChildren(close, ...children);
  card.classList.add("sheet");
  card.scrollTop = 0;
  card.focus({ preventScroll: narrow.matches });
}
function closeCard() {
  card.classList.remove("sheet");
  card.replaceChildren(el("h2", { id: "card-h" }, "Request details"),
                       el("p", { class: "muted" }, "Select a point on the map to see its status."));
  container.focus();
}
document.addEventListener("keydown", (e) => { if (e.key === "Escape" && card.classList.contains("sheet")) closeCard(); });

async function showCard(publicId) {
  const res = await fetch(`/requests/${encodeURIComponent(publicId)}.json`);
  if (!res.ok) return;
  const { card: c, history } = await res.json();
  const notes = history.filter((h) => h.note);
  showInCard(
    el("h2", { id: "card-h" }, c.service_name),
    el("p", { class: `badge ${c.status}` }, nice(c.status) + (c.closure_reason ? ` — ${nice(c.closure_reason)}` : "")),
    el("dl", { class: "facts" },
       el("dt", {}, "Number"), el("dd", {}, c.public_id),
       el("dt", {}, "Where"), el("dd", {}, (c.address || "—") + (c.coarsened ? " (approximate)" : "")),
       el("dt", {}, "Reported"), el("dd", {}, day(c.requested_at)),
       el("dt", {}, c.closed_at ? "Closed" : "Expected by"), el("dd", {}, day(c.closed_at || c.expected_at))),
    ...(notes.length ? [el("h3", {}, "Updates"),
                        el("ul", {}, ...notes.map((n) => el("li", {}, `${day(n.at)}: ${n.note}`)))] : []),
    ...(c.media_url ? [el("img", { src: c.media_url, alt: "Photo sent with the request" })] : []),
    el("p", {}, el("a", { href: c.url }, "Full status and history")));
}
