// The resident form: the category's questions load as the category changes (the server renders them,
// so the form also works without JavaScript), and a pin on the map sets lat/lon.
import { addDistricts, baseStyle, cityBounds } from "./public-common.js";

const select = document.getElementById("service_code");
async function loadQuestions() {
  const holder = document.getElementById("questions");
  if (!select.value) { holder.replaceChildren(); return; }
  const res = await fetch(`/report/questions/${encodeURIComponent(select.value)}`);
  if (res.ok) holder.outerHTML = await res.text();
}
select.addEventListener("change", loadQuestions);
// Back on this page, the browser refills the category (after this script ran, without a change event):
// load its questions too.
window.addEventListener("pageshow", () => {
  if (select.value && document.getElementById("questions").dataset.service !== select.value) loadQuestions();
});

const container = document.getElementById("pin-map");
const settings = JSON.parse(container.dataset.settings);
const lat = document.getElementById("lat");
const lon = document.getElementById("lon");
const status = document.getElementById("pin-status");
const form = document.getElementById("report-form");
const sent = history.state || {};      // set when this page's form was sent (see the end of this file)
if (sent.lat && !lat.value) { lat.value = sent.lat; lon.value = sent.lon; }   // hidden fields are not refilled
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
// A pin put by hand is the resident's answer: it replaces a place chosen from the list above the form.
const unchoose = () => document.querySelectorAll("input[name=choice]").forEach((r) => { r.checked = false; });
map.on("click", (e) => { unchoose(); place(e.lngLat); });
marker.on("dragend", () => { unchoose(); place(marker.getLngLat()); });
for (const radio of document.querySelectorAll("input[name=choice]")) {   // a place offered: show it
  radio.addEventListener("change", () => {
    const p = { lat: +radio.dataset.lat, lng: +radio.dataset.lon };
    place(p); map.jumpTo({ center: [p.lng, p.lat], zoom: 16 });
  });
}
container.addEventListener("keydown", (e) => {   // keyboard: pan with arrows, Enter drops the pin at the centre
  if (e.key === "Enter") { e.preventDefault(); unchoose(); place(map.getCenter()); }
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

// One ticket per report: the form's idempotency key (and the pin) is kept with this page's history entry
// when it is sent, so coming back to it (the browser fetches the page again, with a new key, and refills
// what was typed) and sending again gets the first ticket back instead of making a second.
const key = form.elements.idempotency_key;
if (sent.reportKey) key.value = sent.reportKey;
form.addEventListener("submit", () => history.replaceState({ reportKey: key.value, lat: lat.value, lon: lon.value }, ""));

// Checked before sending, so a resident is told here instead of losing the page to a refusal:
// a photo over the server's limit, and a required question answered by ticking boxes (a checkbox
// group has no `required` in HTML).
const photo = document.getElementById("photo");
const photoNote = document.getElementById("photo-note");
const mb = (bytes) => (bytes / (1024 * 1024)).toFixed(1);
function checkPhoto() {
  const file = photo.files[0];
  const limit = +photo.dataset.maxBytes;
  const tooBig = file && file.size > limit;
  photo.setCustomValidity(tooBig ? `This photo is ${mb(file.size)} MB; the limit is ${mb(limit)} MB. `
                                   + "Choose a smaller photo, or send the report without one." : "");
  photoNote.textContent = tooBig ? photo.validationMessage : "";
  return !tooBig;
}
photo.addEventListener("change", checkPhoto);
form.addEventListener("change", (e) => {
  if (e.target.type === "checkbox") e.target.closest("fieldset")?.querySelector("input")?.setCustomValidity("");
});
form.addEventListener("submit", (e) => {
  let first = checkPhoto() ? null : photo;
  for (const group of form.querySelectorAll("fieldset[data-required]")) {
    const boxes = group.querySelectorAll("input[type=checkbox]");
    if (boxes.length && ![...boxes].some((b) => b.checked)) {
      const legend = group.querySelector("legend").textContent.replace(/ \(choose at least one\)$/, "");
      boxes[0].setCustomValidity(`${legend} Choose at least one.`);
      first = first || boxes[0];
    }
  }
  if (first) { e.preventDefault(); first.reportValidity(); }
});
