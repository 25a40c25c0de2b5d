// The console's map: district layers as the base (no base map needed), open requests coloured by
// status, the draggable pin and the possible duplicates. Vector tiles when the app serves them,
// otherwise the console's own GeoJSON endpoints.
import { debounce } from "./agent-api.js";

const DISTRICT_LAYERS = ["neighborhoods", "wards", "precincts", "police_districts"];
const STATUS_COLOURS = ["match", ["get", "status"],
  "open", "#cf222e", "acknowledged", "#bf8700", "in_progress", "#0969da", "#6e7781"];
const EMPTY = { type: "FeatureCollection", features: [] };
const BOSTON = [-71.0589, 42.3201];

function districtSource(settings, layer) {
  if (settings.tiles) {
    return { type: "vector", tiles: [`${location.origin}/tiles/${layer}/{z}/{x}/{y}.mvt`], maxzoom: 16 };
  }
  return { type: "geojson", data: `/agent/outlines/${layer}.geojson` };
}

// Open work only; `v` changes after a live event so the browser asks again (the server's tile cache
// is keyed on the data version, so it answers with fresh tiles).
const OPEN_STATUSES = "open,acknowledged,in_progress";
const requestsTiles = (version) => `${location.origin}/tiles/requests/{z}/{x}/{y}.mvt?status=${OPEN_STATUSES}&v=${version}`;
// The tile server re-reads its data version at most every second: wait a little longer than that.
const TILE_REFRESH_DELAY_MS = 1500;

function requestsSource(settings, version) {
  if (settings.tiles) return { type: "vector", tiles: [requestsTiles(version)], maxzoom: 16 };
  return { type: "geojson", data: EMPTY };
}

function baseStyle(settings) {
  const style = { version: 8, sources: {}, layers: [
    { id: "background", type: "background", paint: { "background-color": "#dfe6ec" } }] };
  if (settings.basemap) {
    style.sources.basemap = { type: "raster", tiles: [settings.basemap], tileSize: 256 };
    style.layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  return style;
}

function sourceLayer(settings, layer) {
  return settings.tiles ? { "source-layer": layer } : {};
}

function addLayers(map, settings) {
  const base = !settings.basemap;
  map.addSource("city_boundary", districtSource(settings, "city_boundary"));
  for (const layer of DISTRICT_LAYERS) map.addSource(layer, districtSource(settings, layer));
  map.addSource("requests", requestsSource(settings, 0));
  map.addSource("duplicates", { type: "geojson", data: EMPTY });
  if (base) {
    map.addLayer({ id: "city-fill", type: "fill", source: "city_boundary", ...sourceLayer(settings, "city_boundary"),
                   paint: { "fill-color": "#ffffff" } });
  }
  map.addLayer({ id: "neighborhoods-fill", type: "fill", source: "neighborhoods", ...sourceLayer(settings, "neighborhoods"),
                 paint: { "fill-color": "#f3efe4", "fill-opacity": base ? 0.55 : 0.15 } });
  map.addLayer({ id: "neighborhoods-line", type: "line", source: "neighborhoods", ...sourceLayer(settings, "neighborhoods"),
                 paint: { "line-color": "#a39577", "line-width": 1 } });
  map.addLayer({ id: "precincts-line", type: "line", source: "precincts", minzoom: 14, ...sourceLayer(settings, "precincts"),
                 paint: { "line-color": "#b7c0c9", "line-width": 0.6 } });
  map.addLayer({ id: "wards-line", type: "line", source: "wards", ...sourceLayer(settings, "wards"),
                 paint: { "line-color": "#7d8a96", "line-width": 1, "line-dasharray": [3, 2] } });
  map.addLayer({ id: "police-line", type: "line", source: "police_districts", ...sourceLayer(settings, "police_districts"),
                 paint: { "line-color": "#12263f", "line-width": ["interpolate", ["linear"], ["zoom"], 11, 1.5, 16, 3.5] } });
  map.addLayer({ id: "city-line", type: "line", source: "city_boundary", ...sourceLayer(settings, "city_boundary"), paint: { "line-color": "#12263f", "line-width": 2 } });
  // Below zoom 14 the tiles carry clusters (count, open); from 14 on, one point per request (status).
  map.addLayer({ id: "requests-clusters", type: "circle", source: "requests", ...sourceLayer(settings, "requests"),
                 filter: ["all", ["has", "count"], [">", ["get", "open"], 0]],
                 paint: { "circle-color": "#cf222e", "circle-opacity": 0.55, "circle-stroke-color": "#fff",
                          "circle-stroke-width": 0.5,
                          "circle-radius": ["interpolate", ["linear"], ["get", "open"], 1, 2.5, 20, 6, 200, 12] } });
  map.addLayer({ id: "requests", type: "circle", source: "requests", ...sourceLayer(settings, "requests"),
                 filter: ["all", ["has", "status"], ["!=", ["get", "status"], "closed"]],
                 paint: { "circle-color": STATUS_COLOURS, "circle-stroke-color": "#fff", "circle-stroke-width": 1,
                          "circle-radius": ["interpolate", ["linear"], ["zoom"], 11, 2, 16, 6] } });
  map.addLayer({ id: "duplicates", type: "circle", source: "duplicates",
                 paint: { "circle-color": STATUS_COLOURS, "circle-radius": 9, "circle-stroke-color": "#8250df",
                          "circle-stroke-width": 3 } });
}

export function createMap(settings, { onPlace }) {
  maplibregl.setWorkerUrl(document.querySelector('script[data-worker]').dataset.worker);
  const map = new maplibregl.Map({ container: "map", style: baseStyle(settings), center: BOSTON, zoom: 11.3,
                                   attributionControl: false, keyboard: true });
  // The "Where" card covers the map's top-left: centre things in the part of the map one can see.
  map.setPadding({ left: 400, top: 0, right: 0, bottom: 0 });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
  const pin = new maplibregl.Marker({ draggable: true, color: "#cf222e" });
  let pinShown = false;
  let requestsVersion = 0;
  const ready = new Promise((resolve) => map.on("load", () => { addLayers(map, settings); resolve(); }));
  // Hovering an open request names it (number, category, status); clicking still places the pin.
  const hover = new maplibregl.Popup({ closeButton: false, closeOnClick: false, offset: 8, className: "request-tip" });
  const found = new maplibregl.Popup({ closeButton: false, closeOnClick: false, offset: 10, className: "ticket-tip" });
  for (const layer of ["requests", "duplicates"]) {
    map.on("mousemove", layer, (e) => {
      const p = e.features[0].properties;
      map.getCanvas().style.cursor = "pointer";
      hover.setLngLat(e.lngLat).setText(`#${p.public_id} ${p.service_name || ""} · ${String(p.status).replace("_", " ")}`)
        .addTo(map);
    });
    map.on("mouseleave", layer, () => { map.getCanvas().style.cursor = ""; hover.remove(); });
  }

  const throttledDrag = throttle(() => { const p = pin.getLngLat(); onPlace(p.lat, p.lng, "drag"); }, 250);
  pin.on("drag", throttledDrag);
  pin.on("dragend", () => { const p = pin.getLngLat(); onPlace(p.lat, p.lng, "dragend"); });
  map.on("click", (e) => { place(e.lngLat.lat, e.lngLat.lng); onPlace(e.lngLat.lat, e.lngLat.lng, "click"); });
  // Keyboard: with the map focused, Enter drops the pin at the centre (arrow keys pan the map).
  map.getCanvas().addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      const c = map.getCenter();
      place(c.lat, c.lng);
      onPlace(c.lat, c.lng, "keyboard");
    }
  });

  // Keyboard: with the pin focused, arrow keys move it 10 m (Shift: 50 m), like a drag.
  pin.getElement().addEventListener("keydown", (e) => {
    const step = { ArrowUp: [1, 0], ArrowDown: [-1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[e.key];
    if (!step) return;
    e.preventDefault();
    e.stopPropagation();
    const metres = e.shiftKey ? 50 : 10;
    const p = pin.getLngLat();
    const lat = p.lat + (step[0] * metres) / 111320;
    const lon = p.lng + (step[1] * metres) / (111320 * Math.cos((p.lat * Math.PI) / 180));
    place(lat, lon);
    throttledDrag();
  });

  function place(lat, lon) {
    pin.setLngLat([lon, lat]);
    if (!pinShown) { pin.addTo(map); pinShown = true; }
    const el = pin.getElement();
    el.setAttribute("tabindex", "0");
    el.setAttribute("role", "button");
    el.setAttribute("aria-label", "Pin: drag it, or use the arrow keys to move it (Shift: 50 m)");
    el.dataset.lat = lat.toFixed(6);
    el.dataset.lon = lon.toFixed(6);
  }

  const refreshGeojson = debounce(async () => {
    await ready;
    const b = map.getBounds();
    const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(",");
    try {
      const res = await fetch(`/agent/open-requests.geojson?bbox=${bbox}`, { credentials: "same-origin",
                                                                           headers: { Accept: "application/json" } });
      if (res.ok) map.getSource("requests").setData(await res.json());
    } catch { /* the next move or live event retries */ }
  }, 300);

  async function refreshRequests() {
    await ready;
    if (settings.tiles) {
      requestsVersion += 1;   // new URL: MapLibre refetches the visible tiles
      const version = requestsVersion;
      setTimeout(() => { if (version === requestsVersion) map.getSource("requests").setTiles([requestsTiles(version)]); },
                 TILE_REFRESH_DELAY_MS);
    } else {
      refreshGeojson();
    }
  }
  if (!settings.tiles) map.on("moveend", refreshGeojson);
  ready.then(refreshRequests);

  return {
    map, ready, refreshRequests,
    setPin(lat, lon, { fly = false } = {}) {
      place(lat, lon);
      if (fly) map.flyTo({ center: [lon, lat], zoom: Math.max(map.getZoom(), 15.5), speed: 2.2 });
    },
    clearPin() { pin.remove(); pinShown = false; },
    async showDuplicates(list) {
      await ready;
      map.getSource("duplicates").setData({ type: "FeatureCollection", features: list.map((d) => ({
        type: "Feature", geometry: { type: "Point", coordinates: [d.lon, d.lat] },
        properties: { public_id: d.public_id, status: d.status, service_name: d.service_name } })) });
    },
    // A looked-up ticket: fly there and name it, so its dot stands out among the others.
    showTicket(lat, lon, label) {
      map.flyTo({ center: [lon, lat], zoom: 16, speed: 2.2 });
      found.setLngLat([lon, lat]).setText(label).addTo(map);
    },
    hideTicket() { found.remove(); },
  };
}

function throttle(fn, ms) {
  let last = 0, timer = null;
  return () => {
    const now = Date.now();
    clearTimeout(timer);
    if (now - last >= ms) { last = now; fn(); } else { timer = setTimeout(() => { last = Date.now(); fn(); }, ms); }
  };
}
