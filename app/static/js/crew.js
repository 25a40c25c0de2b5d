// "Near me" and "My route": where the crew stands (browser geolocation, or a pin they put on the map
// when location is refused), the open tickets nearest first, and the day's visiting order.
import { EMPTY, SLA_COLOURS, formatAge, formatDistance, makeMap, whenLoaded } from "./crew-map.js";
import "./crew-offline.js";
import { showOutbox } from "./crew-outbox.js";
import { describeQueue, lastPosition, pending, recall, remember, rememberPosition, startReplaying, ticketOf } from "./crew-queue.js";
import { showRefused } from "./crew-refused.js";

const settings = JSON.parse(document.getElementById("crew-settings").textContent);
const $ = (id) => document.getElementById(id);
const SLA_TEXT = { overdue: "overdue", due_soon: "due soon", on_time: "on time", no_sla: "no SLA" };
const state = { pos: null, manual: false, picking: false, mode: "near", watch: null, tickets: [] };

const map = makeMap("map", settings);
const here = new maplibregl.Marker({ color: "#0b5cad", draggable: true });
here.on("dragend", () => { const p = here.getLngLat(); setPosition(p.lat, p.lng, true); });

whenLoaded(map).then(() => {
  map.addSource("tickets", { type: "geojson", data: EMPTY });
  map.addSource("route", { type: "geojson", data: EMPTY });
  map.addLayer({ id: "route", type: "line", source: "route", paint: { "line-color": "#0b5cad", "line-width": 3, "line-dasharray": [2, 1] } });
  map.addLayer({ id: "tickets", type: "circle", source: "tickets",
                 paint: { "circle-color": SLA_COLOURS, "circle-radius": 7, "circle-stroke-color": "#fff", "circle-stroke-width": 2 } });
  map.addLayer({ id: "ticket-labels", type: "symbol", source: "tickets",
                 layout: { "text-field": ["get", "rank"], "text-size": 11, "text-offset": [0, -1.3] }, paint: { "text-halo-color": "#fff", "text-halo-width": 1.5 } });
  map.on("click", "tickets", (e) => { location.href = `/crew/tickets/${e.features[0].properties.public_id}`; });
});

map.on("click", (e) => {
  if (!state.picking && state.pos) return;
  state.picking = false;
  $("i-am-here").classList.remove("active");
  setPosition(e.lngLat.lat, e.lngLat.lng, true);
});

function setPosition(lat, lon, manual) {
  state.pos = { lat, lon };
  state.manual = manual;
  if (manual && state.watch !== null) { navigator.geolocation.clearWatch(state.watch); state.watch = null; }
  rememberPosition(lat, lon, manual);
  here.setLngLat([lon, lat]).addTo(map);
  $("where").textContent = manual ? `You put yourself at ${lat.toFixed(5)}, ${lon.toFixed(5)} (drag the blue pin to move).`
                                  : `Your location: ${lat.toFixed(5)}, ${lon.toFixed(5)}.`;
  $("where").dataset.state = manual ? "manual" : "gps";
  // A phone reports its position every few seconds: reload the list only after a real move.
  if (!manual && state.loadedAt && metresBetween(state.loadedAt, state.pos) <= 25) return;
  state.loadedAt = { ...state.pos };
  load();
}

function metresBetween(a, b) {
  const rad = Math.PI / 180;
  const x = (b.lon - a.lon) * rad * Math.cos(((a.lat + b.lat) / 2) * rad);
  const y = (b.lat - a.lat) * rad;
  return Math.hypot(x, y) * 6371008;
}

function startGeolocation() {
  if (!("geolocation" in navigator)) return refused("this browser cannot locate you");
  state.watch = navigator.geolocation.watchPosition(
    (p) => { if (!state.manual) setPosition(p.coords.latitude, p.coords.longitude, false); },
    (err) => refused(err.code === err.PERMISSION_DENIED ? "location was refused" : "location is not available"),
    { enableHighAccuracy: true, maximumAge: 15000, timeout: 15000 });
}

function refused(why) {
  if (state.pos) return;
  const saved = lastPosition();
  $("where").dataset.state = "refused";
  $("where").textContent = `Your ${why}: tap the map where you are ("I am here").`;
  state.picking = true;
  $("i-am-here").classList.add("active");
  if (saved) map.jumpTo({ center: [saved.lon, saved.lat] });
}

$("i-am-here").addEventListener("click", () => {
  state.picking = true;
  $("i-am-here").classList.add("active");
  $("where").textContent = "Tap the map where you are.";
});

for (const el of ["f-scope", "f-service", "f-overdue"]) $(el).addEventListener("change", () => load());
for (const tab of document.querySelectorAll("[role=tab]")) {
  tab.addEventListener("click", () => {
    state.mode = tab.dataset.mode;
    for (const t of document.querySelectorAll("[role=tab]")) t.setAttribute("aria-selected", String(t === tab));
    $("filters").hidden = state.mode === "route";
    load();
  });
}

let loading = 0;
async function load() {
  if (!state.pos) return;
  const mine = ++loading;
  const q = new URLSearchParams({ lat: state.pos.lat, lon: state.pos.lon });
  let url;
  if (state.mode === "route") {
    url = `/crew/route.json?${q}`;
  } else {
    q.set("scope", $("f-scope").value);
    if ($("f-service").value) q.set("service", $("f-service").value);
    if ($("f-overdue").checked) q.set("overdue", "1");
    url = `/crew/near.json?${q}`;
  }
  let body;
  try {
    const res = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    body = await res.json();
    if (!res.ok) throw new Error(body.message || res.statusText);
    remember(`lastList.${state.mode}`, { at: Date.now(), body });
    $("list-note").hidden = true;
  } catch (err) {
    if (mine !== loading) return;
    // Without a connection, the last list this phone saw is better than nothing (and says so).
    const last = recall(`lastList.${state.mode}`);
    if (!last) {
      $("tickets").innerHTML = `<li class="alert">Could not load tickets: ${escapeHtml(err.message)}</li>`;
      return;
    }
    body = last.body;
    $("list-note").hidden = false;
    $("list-note").textContent = `No connection: the list as it was at ${new Date(last.at).toLocaleTimeString()} (distances from where you were then).`;
  }
  if (mine !== loading) return;
  const tickets = state.mode === "route" ? body.stops : body.tickets;
  render(tickets);
  await whenLoaded(map);
  map.getSource("tickets").setData({ type: "FeatureCollection", features: tickets.map((t, i) => ({
    type: "Feature", geometry: { type: "Point", coordinates: [t.lon, t.lat] },
    properties: { public_id: t.public_id, sla: t.sla, rank: String(i + 1) } })) });
  const line = state.mode === "route" && tickets.length
    ? { type: "Feature", geometry: { type: "LineString", coordinates: [[state.pos.lon, state.pos.lat], ...tickets.map((t) => [t.lon, t.lat])] }, properties: {} }
    : null;
  map.getSource("route").setData(line ? { type: "FeatureCollection", features: [line] } : EMPTY);
  $("route-summary").hidden = state.mode !== "route";
  if (state.mode === "route") {
    $("route-summary").textContent = `${tickets.length} stops · ${formatDistance(body.total_m)} as the crow flies (nearest-first alone: ${formatDistance(body.nearest_neighbour_m)})`;
  }
  fit(tickets);
}

function fit(tickets) {
  const pts = [[state.pos.lon, state.pos.lat], ...tickets.slice(0, 10).map((t) => [t.lon, t.lat])];
  const b = pts.reduce((acc, p) => acc.extend(p), new maplibregl.LngLatBounds(pts[0], pts[0]));
  map.fitBounds(b, { padding: 40, maxZoom: 17, duration: 0 });
}

function escapeHtml(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// How many of this phone's actions wait to be sent, by ticket number.
function waitingByTicket() {
  const counts = {};
  for (const item of pending()) counts[ticketOf(item)] = (counts[ticketOf(item)] || 0) + 1;
  return counts;
}

function render(tickets) {
  state.tickets = tickets;
  const list = $("tickets");
  const waiting = waitingByTicket();
  if (!tickets.length) {
    list.innerHTML = `<li class="muted">No open tickets${state.mode === "route" ? " for your crew" : " match"}.</li>`;
    return;
  }
  list.innerHTML = tickets.map((t) => `
    <li class="ticket" data-public-id="${escapeHtml(t.public_id)}" data-distance="${t.distance_m}">
      <a href="/crew/tickets/${encodeURIComponent(t.public_id)}">
        <span class="dist">${formatDistance(t.distance_m)}${t.leg_m !== undefined ? ` <small>(+${formatDistance(t.leg_m)})</small>` : ""}</span>
        <span class="cat">${escapeHtml(t.service_name)}</span>
        <span class="badge sla-${t.sla}">${SLA_TEXT[t.sla]}</span>
        <span class="meta"><span class="num">#${escapeHtml(t.public_id)}</span> · ${escapeHtml(t.status.replace("_", " "))} · ${formatAge(t.age_hours)} old · ${escapeHtml(t.crew ? t.crew.name : "no crew")}</span>
        <span class="addr">${escapeHtml(t.address || "")}</span>
        ${waiting[t.public_id] ? `<span class="waiting">${waiting[t.public_id]} waiting to send</span>` : ""}
      </a>
    </li>`).join("");
}

const queueStatus = $("queue-status");
describeQueue(queueStatus);
showRefused();
showOutbox();
for (const event of ["pin311:queue", "storage"]) {
  window.addEventListener(event, () => { describeQueue(queueStatus); if (state.tickets.length) render(state.tickets); });
}
startReplaying(() => { describeQueue(queueStatus); return false; });
startGeolocation();
