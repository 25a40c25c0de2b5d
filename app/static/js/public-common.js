// Shared by the public pages: a map styled from our own vector tiles (district layers as the base,
// so no base map is needed) and small DOM helpers.
export const STATUS_COLOURS = ["match", ["get", "status"],
  "open", "#cf222e", "acknowledged", "#bf8700", "in_progress", "#0969da", "#6e7781"];
const tiles = (layer, query = "") => [`${location.origin}/tiles/${layer}/{z}/{x}/{y}.mvt${query}`];

export function baseStyle(settings) {
  const style = { version: 8, sources: {}, layers: [
    { id: "background", type: "background", paint: { "background-color": "#dfe6ec" } }] };
  if (settings.basemap) {
    style.sources.basemap = { type: "raster", tiles: [settings.basemap], tileSize: 256 };
    style.layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  return style;
}

export function addDistricts(map, settings) {
  const base = !settings.basemap;
  for (const layer of ["city_boundary", "neighborhoods", "wards", "police_districts"]) {
    map.addSource(layer, { type: "vector", tiles: tiles(layer), maxzoom: 16 });
  }
  if (base) map.addLayer({ id: "city-fill", type: "fill", source: "city_boundary", "source-layer": "city_boundary",
                           paint: { "fill-color": "#ffffff" } });
  map.addLayer({ id: "neighborhoods-fill", type: "fill", source: "neighborhoods", "source-layer": "neighborhoods",
                 paint: { "fill-color": "#f3efe4", "fill-opacity": base ? 0.6 : 0.15 } });
  map.addLayer({ id: "neighborhoods-line", type: "line", source: "neighborhoods", "source-layer": "neighborhoods",
                 paint: { "line-color": "#a39577", "line-width": 1 } });
  map.addLayer({ id: "wards-line", type: "line", source: "wards", "source-layer": "wards", minzoom: 13,
                 paint: { "line-color": "#7d8a96", "line-width": 1, "line-dasharray": [3, 2] } });
  map.addLayer({ id: "city-line", type: "line", source: "city_boundary", "source-layer": "city_boundary",
                 paint: { "line-color": "#12263f", "line-width": 2 } });
}

export function requestTiles(query) { return tiles("requests", query); }

export async function cityBounds() {
  const res = await fetch("/ogc/collections/city_boundary");
  const bbox = (await res.json()).extent.spatial.bbox[0];
  return [[bbox[0], bbox[1]], [bbox[2], bbox[3]]];
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

export const nice = (s) => (s || "").replaceAll("_", " ");
export const day = (iso) => (iso ? new Date(iso).toLocaleDateString(undefined, { dateStyle: "medium" }) : "—");
