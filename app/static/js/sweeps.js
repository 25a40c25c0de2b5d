// Area sweeps: draw a polygon with clicks (or pick districts), preview the open requests inside, create the
// sweep; on a sweep's page, show its area and requests. MapLibre only, from our own static files.
"use strict";

const settings = JSON.parse(document.getElementById("sweep-settings").textContent);
const EMPTY = { type: "FeatureCollection", features: [] };
const csrf = document.querySelector('meta[name="csrf-token"]').content;

function baseStyle() {
  const style = { version: 8, sources: {}, layers: [
    { id: "background", type: "background", paint: { "background-color": "#eef1f4" } }] };
  if (settings.basemap) {
    style.sources.basemap = { type: "raster", tiles: [settings.basemap], tileSize: 256 };
    style.layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  return style;
}

const map = new maplibregl.Map({ container: "sweep-map", style: baseStyle(), center: [-71.07, 42.33], zoom: 11,
                                 attributionControl: false, doubleClickZoom: false });
map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");

function addLayers() {
  map.addSource("wards", { type: "geojson", data: "/ogc/collections/wards/items?limit=500" });
  map.addLayer({ id: "wards", type: "line", source: "wards", paint: { "line-color": "#8c959f", "line-width": 0.8 } });
  map.addSource("area", { type: "geojson", data: EMPTY });
  map.addLayer({ id: "area-fill", type: "fill", source: "area", paint: { "fill-color": "#0969da", "fill-opacity": 0.15 } });
  map.addLayer({ id: "area-line", type: "line", source: "area", paint: { "line-color": "#0969da", "line-width": 2 } });
  map.addSource("points", { type: "geojson", data: EMPTY });
  map.addLayer({ id: "points", type: "circle", source: "points",
                 paint: { "circle-radius": 4, "circle-stroke-color": "#fff", "circle-stroke-width": 1,
                          "circle-color": ["match", ["get", "status"], "closed", "#1a7f37", "#cf222e"] } });
}

const points = (rows) => ({ type: "FeatureCollection", features: rows.map(([lon, lat, status]) => (
  { type: "Feature", geometry: { type: "Point", coordinates: [lon, lat] }, properties: { status } })) });

if (document.getElementById("sweep-form")) {
  let corners = [];
  let chosen = null;  // {area: polygon} or {layer, districts}
  const button = document.getElementById("create-sweep");
  const summary = document.getElementById("preview-summary");

  const drawn = () => {
    const ring = corners.length ? [...corners, corners[0]] : [];
    const geometry = corners.length >= 3 ? { type: "Polygon", coordinates: [ring] }
                                         : { type: "LineString", coordinates: corners };
    return corners.length ? { type: "Feature", geometry, properties: {} } : null;
  };
  const showDrawn = () => { const f = drawn(); map.getSource("area").setData(f ? { type: "FeatureCollection", features: [f] } : EMPTY); };

  async function post(url, body) {
    const resp = await fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf }, body: JSON.stringify(body) });
    return [resp, await resp.json()];
  }

  async function preview(body) {
    chosen = body;
    summary.textContent = "Looking…";
    const [resp, data] = await post("/dashboards/sweeps/preview", body);
    const tbody = document.querySelector("#preview-categories tbody");
    tbody.replaceChildren();
    if (!resp.ok) { summary.textContent = data.error.message; button.disabled = true; return; }
    summary.textContent = `${data.total} open request${data.total === 1 ? "" : "s"} inside.`;
    // one row per category, ticked: untick a category to leave its requests out of the sweep
    for (const c of data.categories) {
      const tr = document.createElement("tr");
      const tick = document.createElement("input");
      Object.assign(tick, { type: "checkbox", checked: true, value: c.service_code, className: "sweep-category",
                            id: `cat-${c.service_code}` });
      const label = document.createElement("label");
      label.htmlFor = tick.id;
      label.textContent = c.service_name;
      const cells = [[tick, label], [document.createTextNode(String(c.open))]];
      for (const parts of cells) { const td = document.createElement("td"); td.append(...parts); tr.append(td); }
      tbody.append(tr);
    }
    map.getSource("area").setData({ type: "Feature", geometry: JSON.parse(data.area), properties: {} });
    map.getSource("points").setData(points(data.requests.map((r) => [r.lon, r.lat, r.status])));
    button.disabled = data.total === 0;
  }

  map.on("load", () => {
    addLayers();
    map.on("click", (e) => { corners.push([e.lngLat.lng, e.lngLat.lat]); showDrawn(); });
  });
  document.getElementById("finish-area").addEventListener("click", () => {
    const f = drawn();
    if (!f || f.geometry.type !== "Polygon") { summary.textContent = "Click at least three corners first."; return; }
    preview({ area: f.geometry });
  });
  document.getElementById("clear-area").addEventListener("click", () => {
    corners = []; chosen = null; showDrawn(); button.disabled = true;
    map.getSource("points").setData(EMPTY);
  });
  const layerSelect = document.getElementById("pick-layer");
  layerSelect.addEventListener("change", () => {
    for (const s of document.querySelectorAll(".district-pick")) s.hidden = s.dataset.layer !== layerSelect.value;
  });
  document.getElementById("use-districts").addEventListener("click", () => {
    const select = document.getElementById(`pick-${layerSelect.value}`);
    const codes = [...select.selectedOptions].map((o) => o.value);
    if (!codes.length) { summary.textContent = "Pick at least one district."; return; }
    corners = [];
    preview({ layer: layerSelect.value, districts: codes });
  });
  document.getElementById("sweep-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!chosen) return;
    const form = e.target;
    const error = document.getElementById("sweep-error");
    button.disabled = true;
    const ticks = [...document.querySelectorAll(".sweep-category")];
    const categories = ticks.every((t) => t.checked) ? undefined : ticks.filter((t) => t.checked).map((t) => t.value);
    const [resp, data] = await post("/dashboards/sweeps", { ...chosen, name: form.name.value,
      crew: form.crew.value, target_date: form.target_date.value, categories });
    if (resp.ok) { location.assign(data.url); return; }
    error.textContent = data.error.message; error.hidden = false; button.disabled = false;
  });
} else {
  map.on("load", () => {
    addLayers();
    const area = JSON.parse(settings.area);
    map.getSource("area").setData({ type: "Feature", geometry: area, properties: {} });
    map.getSource("points").setData(points(settings.points));
    const b = [180, 90, -180, -90];
    const walk = (c) => { if (typeof c[0] === "number") { b[0] = Math.min(b[0], c[0]); b[1] = Math.min(b[1], c[1]);
      b[2] = Math.max(b[2], c[0]); b[3] = Math.max(b[3], c[1]); } else c.forEach(walk); };
    walk(area.coordinates);
    map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 20, duration: 0 });
  });
}
