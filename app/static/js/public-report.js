// The resident form: the category's questions load as the category changes (the server renders them,
// so the form also works without JavaScript), and a pin on the map sets lat/lon.
import { addDistricts, baseStyle, cityBounds } from "./public-common.js";

const select = document.getElementById("service_code");
select.addEventListener("change", async () => {
  const holder = document.getElementById("questions");
  if (!select.value) { holder.replaceChildren(); return; }
  const res = await fetch(`/report/questions/${encodeURIComponent(select.value)}`);
  if (res.ok) holder.outerHTML = await res.text();
});

const container = document.getElementById("pin-map");
const settings = JSON.parse(container.dataset.settings);
const lat = document.getElementById("lat");
const lon = document.getElementById("lon");
const status = document.getElementById("pin-status");
const map = new maplibregl.Map({ container, style: baseStyle(settings), center: [-71.06, 42.32], zoom: 11,
                                 attributionControl: false });
map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
const marker = new maplibregl.Marker({ draggable: true, color: "#b42318" });

function place(lngLat) {
  marker.setLngLat(lngLat).addTo(map);
  lat.value = lngLat.lat.toFixed(6);
  lon.value = lngLat.lng.toFixed(6);
  status.textContent = `Pin at ${lat.value}, ${lon.value}`;
}
map.on("load", async () => {
  addDistricts(map, settings);
  if (lat.value && lon.value) {
    place({ lat: +lat.value, lng: +lon.value });
    map.jumpTo({ center: [+lon.value, +lat.value], zoom: 16 });
  } else {
    map.fitBounds(await cityBounds(), { padding: 10, animate: false });
  }
});
map.on("click", (e) => place(e.lngLat));
marker.on("dragend", () => place(marker.getLngLat()));
container.addEventListener("keydown", (e) => {   // keyboard: pan with arrows, Enter drops the pin at the centre
  if (e.key === "Enter") { e.preventDefault(); place(map.getCenter()); }
});
if (navigator.geolocation && !lat.value) {
  const here = document.createElement("button");
  here.type = "button"; here.className = "secondary"; here.textContent = "Use my position";
  here.addEventListener("click", () => navigator.geolocation.getCurrentPosition((pos) => {
    const p = { lat: pos.coords.latitude, lng: pos.coords.longitude };
    place(p); map.jumpTo({ center: [p.lng, p.lat], zoom: 17 });
  }));
  container.after(here);
}
