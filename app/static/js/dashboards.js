// Analyst dashboard maps: the district choropleth (SLA compliance) and the hot-spot grid, both drawn by
// MapLibre from the same GeoJSON the page offers for download (no CDN, no base map needed).
"use strict";

const settings = JSON.parse(document.getElementById("dash-settings").textContent);
const q = settings.query ? `?${settings.query}` : "";

function baseStyle() {
  const style = { version: 8, sources: {}, layers: [
    { id: "background", type: "background", paint: { "background-color": "#eef1f4" } }] };
  if (settings.basemap) {
    style.sources.basemap = { type: "raster", tiles: [settings.basemap], tileSize: 256 };
    style.layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  return style;
}

function bounds(fc) {
  const b = [180, 90, -180, -90];
  const walk = (c) => {
    if (typeof c[0] === "number") {
      b[0] = Math.min(b[0], c[0]); b[1] = Math.min(b[1], c[1]);
      b[2] = Math.max(b[2], c[0]); b[3] = Math.max(b[3], c[1]);
    } else c.forEach(walk);
  };
  fc.features.forEach((f) => f.geometry && walk(f.geometry.coordinates));
  return b[0] <= b[2] ? [[b[0], b[1]], [b[2], b[3]]] : null;
}

function mapWith(container, url, paint, describe) {
  const el = document.getElementById(container);
  if (!el) return;
  const map = new maplibregl.Map({ container, style: baseStyle(), center: [-71.07, 42.33], zoom: 10.3,
                                   attributionControl: false });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.on("load", async () => {
    const resp = await fetch(url, { credentials: "same-origin" });
    if (!resp.ok) { el.dataset.state = "error"; return; }
    const fc = await resp.json();
    map.addSource("data", { type: "geojson", data: fc });
    map.addLayer({ id: "fill", type: "fill", source: "data", paint });
    map.addLayer({ id: "line", type: "line", source: "data", paint: { "line-color": "#56606b", "line-width": 0.5 } });
    const box = bounds(fc);
    if (box) map.fitBounds(box, { padding: 10, duration: 0 });
    const popup = new maplibregl.Popup({ closeButton: false, offset: 4 });
    map.on("click", "fill", (e) => popup.setLngLat(e.lngLat).setText(describe(e.features[0].properties)).addTo(map));
    map.once("idle", () => { el.dataset.state = "loaded"; el.dataset.features = String(fc.features.length); });
  });
}

const slaColour = ["case", ["==", ["typeof", ["get", "sla_pct"]], "number"],
  ["interpolate", ["linear"], ["get", "sla_pct"], 40, "#d73027", 60, "#fc8d59", 75, "#fee08b", 85, "#d9ef8b", 95, "#1a9850"],
  "#cccccc"];
mapWith("map-districts", `/dashboards/data/districts.geojson${q}`, { "fill-color": slaColour, "fill-opacity": 0.8 },
  (p) => `${p.name || p.code}: ${p.open} open (${p.overdue} overdue, ${p.open_no_sla} without an SLA date), ` +
         `SLA met ${p.sla_pct ?? "–"}% of ${p.closed_with_sla}`);
mapWith("map-hot_spots", `/dashboards/data/hot_spots.geojson${q}`,
  { "fill-color": ["interpolate", ["linear"], ["get", "requests"], 1, "#fff5eb", 20, "#fdae6b", 100, "#e6550d", 500, "#7f2704"],
    "fill-opacity": 0.85 },
  (p) => `${p.requests} requests (${p.open} open) in this cell${p.neighbourhood ? `, ${p.neighbourhood}` : ""}`);

const legend = document.getElementById("legend-districts");
if (legend) legend.textContent = "Share of closed requests that met their SLA: red < 50 %, yellow ≈ 75 %, green ≥ 95 %; grey: none closed.";

// The district list offers only the districts of the layer chosen beside it (all of them, grouped, when
// no layer is chosen); a district of another layer is cleared rather than sent with the wrong layer.
const layerSelect = document.getElementById("f-dlayer");
const districtSelect = document.getElementById("f-district");
function offerDistricts() {
  const layer = layerSelect.value;
  for (const group of districtSelect.querySelectorAll("optgroup")) {
    const other = layer !== "" && group.dataset.layer !== layer;
    group.hidden = other;
    group.disabled = other;
  }
  const chosen = districtSelect.selectedOptions[0];
  if (chosen && chosen.parentElement.disabled) districtSelect.value = "";
}
if (layerSelect && districtSelect) {
  layerSelect.addEventListener("change", offerDistricts);
  districtSelect.addEventListener("change", () => {   // a district picked first brings its layer along
    const chosen = districtSelect.selectedOptions[0];
    if (chosen && chosen.value && layerSelect.value === "") {
      layerSelect.value = chosen.parentElement.dataset.layer;
      offerDistricts();
    }
  });
  offerDistricts();
}
