// The crew's map: no base map needed — the city outline and police districts (vector tiles when the
// app serves them) under the tickets, which come as GeoJSON from the crew's own endpoints.
export const EMPTY = { type: "FeatureCollection", features: [] };
export const BOSTON = [-71.0589, 42.3201];
export const SLA_COLOURS = ["match", ["get", "sla"], "overdue", "#b42318", "due_soon", "#9a6700", "on_time", "#1a7f37", "#4a5560"];

function style(settings) {
  const s = { version: 8, sources: {}, layers: [{ id: "background", type: "background", paint: { "background-color": "#dfe6ec" } }] };
  if (settings.basemap) {
    s.sources.basemap = { type: "raster", tiles: [settings.basemap], tileSize: 256 };
    s.layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  if (settings.tiles) {
    for (const layer of ["city_boundary", "police_districts"]) {
      s.sources[layer] = { type: "vector", tiles: [`${location.origin}/tiles/${layer}/{z}/{x}/{y}.mvt`], maxzoom: 16 };
    }
    if (!settings.basemap) s.layers.push({ id: "city-fill", type: "fill", source: "city_boundary", "source-layer": "city_boundary", paint: { "fill-color": "#ffffff" } });
    s.layers.push({ id: "police-line", type: "line", source: "police_districts", "source-layer": "police_districts", paint: { "line-color": "#7d8a96", "line-width": 1 } });
    s.layers.push({ id: "city-line", type: "line", source: "city_boundary", "source-layer": "city_boundary", paint: { "line-color": "#12263f", "line-width": 2 } });
  }
  return s;
}

export function makeMap(container, settings, center, zoom) {
  const map = new maplibregl.Map({ container, style: style(settings), center: center || BOSTON, zoom: zoom || 15,
                                   attributionControl: false, dragRotate: false, pitchWithRotate: false });
  map.touchZoomRotate.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  return map;
}

export function whenLoaded(map) {
  return new Promise((resolve) => (map.loaded() ? resolve() : map.once("load", resolve)));
}

export function formatDistance(m) {
  if (m === null || m === undefined) return "";
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(m < 10000 ? 1 : 0)} km`;
}

export function formatAge(hours) {
  if (hours < 1) return "< 1 h";
  if (hours < 48) return `${Math.round(hours)} h`;
  return `${Math.round(hours / 24)} d`;
}
