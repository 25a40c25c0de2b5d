// The agent console: one call = caller + place + category + questions → one ticket (or a caller
// attached to an existing one). Every pin placement asks /api/v1/locate and redraws the panel.
import { api, debounce, el, formatDate, newIdempotencyKey, query } from "./agent-api.js";
import { combobox, markField, readAttributes, renderAttributes } from "./agent-form.js";
import { createMap } from "./agent-map.js";
import { startLive } from "./agent-live.js";
import { ticketCard } from "./agent-ticket.js";

const $ = (id) => document.getElementById(id);
const settings = JSON.parse($("console-settings").textContent);
const call = JSON.parse($("call-data").textContent);

const state = { lat: null, lon: null, inside: null, located: null, service: null, candidate: null,
                key: newIdempotencyKey(), done: false, busy: false, seq: 0, ticket: null };
// Below this a geocoder answer is a guess: intake's PLACE_MIN_SCORE. The console sends coordinates, so
// intake never applies it to the agent's pick; the agent asks the caller instead.
const WEAK_SCORE = 0.5;
const isWeak = (c) => typeof c.score === "number" && c.score < WEAK_SCORE;
// What the console itself last wrote in the address box for a pin placed on the map.
let pinText = null;

const mapView = createMap(settings, { onPlace: (lat, lon, how) => placed(lat, lon, how) });
window.pin311Console = { state, map: mapView.map };   // for tests and the curious
const ticketView = ticketCard($("ticket-view"), { show: mapView.showTicket, hide: mapView.hideTicket });

// --- where -------------------------------------------------------------------------------------------
const addressBox = combobox($("address-search"), $("address-options"), {
  search: debounced(async (q) => {
    const { candidates } = await api(`/api/v1/geocode?${query({ q, limit: 6 })}`);
    if (candidates.length) labelNeighbourhoods(candidates);
    return { found: candidates, message: candidates.length ? null
      : `No address matches “${q}” yet: keep typing, check the spelling, or click the map to drop a pin.` };
  }, 120),
  render: (c) => [el("span", { class: "opt-main" }, c.address),
                  el("span", { class: "opt-sub", "data-hood": "" }, candidateSub(c)),
                  isWeak(c) ? el("span", { class: "weak" }, "weak match — check with the caller") : null],
  pick: (c) => (isWeak(c) ? askAboutWeak(c) : placeCandidate(c)),
});
$("address-search").addEventListener("input", () => dismissWeak());

// "South Boston 02127 · interpolated": where it is, and how the geocoder found it.
function candidateSub(c) {
  return `${c.neighborhood || c.city || ""}${c.zip ? ` ${c.zip}` : ""}${c.match !== "exact" ? ` · ${c.match}` : ""}`;
}

function placeCandidate(c) {
  dismissWeak();
  state.candidate = c;
  $("address-search").value = c.address;
  mapView.setPin(c.lat, c.lon, { fly: true });
  placed(c.lat, c.lon, "address");
}

// A weak guess places nothing until the agent says the caller confirmed it.
function askAboutWeak(c) {
  const typed = $("address-search").value.trim();
  const box = $("weak-confirm");
  box.replaceChildren(
    el("p", {}, el("strong", {}, "Weak match — check with the caller. "),
       `The geocoder only guesses that “${typed}” is `, el("strong", {}, c.address),
       c.neighborhood ? ` (${c.neighborhood})` : "", "."),
    el("button", { type: "button", class: "small", id: "weak-yes", onclick: () => placeCandidate(c) },
       "Caller confirms: place the pin there"), " ",
    el("button", { type: "button", class: "small", id: "weak-no", onclick: () => dismissWeak(true) },
       "Not it: search again"));
  box.hidden = false;
}

function dismissWeak(refocus = false) {
  const box = $("weak-confirm");
  if (box.hidden) return;
  box.hidden = true;
  box.replaceChildren();
  if (refocus) { $("address-search").focus(); $("address-search").select(); }
}

async function labelNeighbourhoods(candidates) {
  if (candidates.every((c) => c.neighborhood)) return;
  try {
    const { neighbourhoods } = await api(`/agent/neighbourhoods?${query({ pt: candidates.map((c) => `${c.lat},${c.lon}`) })}`);
    neighbourhoods.forEach((name, i) => {
      if (!name) return;
      candidates[i].neighborhood = name;
      addressBox.relabel(i, (li) => { const sub = li?.querySelector("[data-hood]");
        if (sub) sub.textContent = candidateSub(candidates[i]); });
    });
  } catch { /* labels are a help, not a need */ }
}

function placed(lat, lon, how) {
  state.lat = lat; state.lon = lon;
  if (how !== "address") {
    state.candidate = null;
    dismissWeak();
    // The box must never name a place the pin has left: the point now, the nearest address once known.
    pinText = `Pin at ${lat.toFixed(5)}, ${lon.toFixed(5)}`;
    $("address-search").value = pinText;
  }
  locate();
}

async function locate() {
  if (state.lat === null) return;
  const mine = ++state.seq;
  $("place").hidden = false;
  $("place").setAttribute("aria-busy", "true");
  try {
    const data = await api(`/api/v1/locate?${query({ lat: state.lat.toFixed(6), lon: state.lon.toFixed(6),
      service_code: state.service?.service_code, radius: settings.duplicateRadius })}`);
    if (mine !== state.seq) return;    // a newer placement is on its way
    state.located = data;
    state.inside = data.inside_jurisdiction;
    // Unless the agent has typed over it since.
    if (!state.candidate && $("address-search").value === pinText) {
      pinText = addressLabel(data) || pinText;
      $("address-search").value = pinText;
    }
    showPlace(data);
  } catch (err) {
    if (mine === state.seq) whereMessage(err.message, "bad");
  } finally {
    if (mine === state.seq) $("place").removeAttribute("aria-busy");
  }
}

function addressLabel(data) {
  if (state.candidate) return state.candidate.address;
  const a = data.address;
  if (!a) return null;
  return a.distance_m > 30 ? `near ${a.address} (${Math.round(a.distance_m)} m)` : a.address;
}

function showPlace(data) {
  const dd = (k) => $("place").querySelector(`[data-k="${k}"]`);
  const d = data.districts || {};
  const label = (k) => (d[k] ? districtLabel(d[k]) : "—");
  if (!data.inside_jurisdiction) {
    whereMessage("Outside the city: this point is not in our service area, so no ticket can be created here. "
                 + "Ask the caller for the address again, or refer them to the neighbouring city.", "bad", "outside");
    ["address", "parcel", "wards", "precincts", "neighborhoods", "police_districts"].forEach((k) => {
      dd(k).textContent = "—"; dd(k).dataset.code = ""; });
    $("place").classList.add("outside");
  } else {
    whereMessage(null);
    $("place").classList.remove("outside");
    dd("address").textContent = addressLabel(data) || "—";
    dd("parcel").textContent = data.parcel_id || "none (street or open space)";
    for (const k of ["wards", "precincts", "neighborhoods", "police_districts"]) {
      dd(k).textContent = label(k);
      dd(k).dataset.code = d[k]?.code || "";
    }
  }
  showRouting(data);
  showDuplicates(data);
  $("submit").disabled = state.done || state.busy || data.inside_jurisdiction === false;
}

// "Ward 8", "South End", "Ward 8 Precinct 2 (0802)": the code only where the name does not already say it.
function districtLabel({ code, name }) {
  const norm = (v) => String(v || "").toLowerCase().replace(/[^a-z0-9]/g, "");
  if (!name) return code;
  return norm(name).includes(norm(code)) ? name : `${name} (${code})`;
}

function whereMessage(text, kind = "bad", tag = "") {
  const box = $("where-message");
  box.hidden = !text;
  box.textContent = text || "";
  box.className = `alert ${kind}`;
  box.dataset.state = tag;
}

function showRouting(data) {
  const box = $("routing");
  if (!data || !data.inside_jurisdiction) { box.textContent = "—"; box.className = "muted"; return; }
  if (!state.service) { box.textContent = "Pick a category to see the crew."; box.className = "muted"; return; }
  const route = (data.routing || []).find((r) => r.service_code === state.service.service_code);
  box.className = "";
  box.replaceChildren(
    el("strong", { class: "crew", id: "crew-name" }, route?.crew?.name || "No crew (unrouted)"),
    el("span", { class: "expected" }, " · expected ", el("time", { datetime: route?.expected_at || "" },
       route?.expected_at ? formatDate(route.expected_at) : "no target date")),
    el("span", { class: "why muted" }, route?.routed_by ? ` (${route.routed_by})` : ""));
  box.dataset.crew = route?.crew?.code || "";
}

function showDuplicates(data) {
  const list = $("duplicates");
  $("dupes-radius").textContent = `(same category within ${settings.duplicateRadius} m)`;
  const dupes = state.service && data?.inside_jurisdiction ? (data.nearby || []) : [];
  mapView.showDuplicates(dupes);
  // The card speaks only when there is something to say: a pin in the city and a category.
  document.querySelector(".dupes-card").hidden = !state.service || state.lat === null || data?.inside_jurisdiction === false;
  if (!state.service) { list.replaceChildren(el("li", { class: "muted" }, "Pick a category to check for duplicates.")); return; }
  if (!dupes.length) { list.replaceChildren(el("li", { class: "muted" }, "No open request of this category nearby.")); return; }
  // One call, one ticket: once this call is on a ticket, there is nothing left to attach it to.
  list.replaceChildren(...dupes.map((d) => el("li", { class: "dupe", "data-public-id": d.public_id },
    el("div", {}, el("strong", {}, `#${d.public_id}`), ` ${d.service_name} · ${d.status.replace("_", " ")}`),
    el("div", { class: "muted" }, `${Math.round(d.distance_m)} m away · ${d.address || "no address"} · ${formatDate(d.requested_at)}`),
    el("button", { type: "button", class: "small attach", onclick: () => attach(d), disabled: state.done || state.busy,
                   "aria-describedby": state.done ? "dupes-locked" : null }, `Attach caller to #${d.public_id}`))));
}

function lockedReason() {
  return state.ticket ? `This call is already on ticket #${state.ticket.public_id} (${state.ticket.how}): one call, one `
    + "ticket. Press “Next call” to take another call." : "";
}

// --- what --------------------------------------------------------------------------------------------
const serviceBox = combobox($("service-search"), $("service-options"), {
  search: debounced(async (q) => {
    const { services } = await api(`/api/v1/services?${query({ q, limit: 8 })}`);
    return { found: services, message: services.length ? null : `No category matches “${q}”. Try other words.` };
  }, 120),
  render: (s) => [el("span", { class: "opt-main" }, s.service_name), el("span", { class: "opt-sub" }, s.group || "")],
  pick: (s) => chooseService(s),
});

function chooseService(s) {
  state.service = s;
  $("service-search").value = s.service_name;
  const chosen = $("service-chosen");
  chosen.hidden = false;
  chosen.title = s.description || "";
  chosen.replaceChildren(el("strong", {}, s.service_name), s.group ? el("span", { class: "muted" }, ` · ${s.group}`) : "");
  renderAttributes($("attributes"), s);
  if (state.located) { showRouting(state.located); locate(); } else showRouting(null);
  const first = $("attributes").querySelector("input, select, textarea");
  if (first) first.focus();
}

// --- submit / attach ---------------------------------------------------------------------------------
function contact() {
  const v = (id) => $(id).value.trim() || undefined;
  return { phone: v("c-phone"), email: v("c-email"), first_name: v("c-first"), last_name: v("c-last") };
}

function formMessage(text, kind = "bad", signIn = false) {
  const box = $("form-message");
  box.hidden = !text;
  box.textContent = text || "";
  box.className = `alert ${kind}`;
  if (signIn) box.append(" ", el("a", { href: "/login?next=/agent/", target: "_blank", rel: "noopener" }, "Sign in (new tab)"));
}

async function submit(e) {
  e?.preventDefault();
  if (state.done) { formMessage(lockedReason()); return; }
  if (state.busy) return;
  formMessage(null);
  const problems = [];
  if (state.lat === null) problems.push("Place the pin: search an address or click the map.");
  else if (state.inside === false) problems.push("The pin is outside the city: no ticket can be created there.");
  if (!state.service) problems.push("Pick a category.");
  const { values, errors } = readAttributes($("attributes"), state.service);
  problems.push(...errors.map((x) => x.message + "."));
  if (problems.length) { formMessage(problems.join(" ")); return; }
  setBusy(true);
  $("submit").textContent = "Creating…";
  try {
    const ticket = await api("/api/v1/requests", {
      method: "POST", headers: { "Idempotency-Key": state.key },
      body: { service_code: state.service.service_code, lat: state.lat, lon: state.lon,
              address: addressLabel(state.located || {}) || undefined,
              address_id: state.candidate?.address_id || undefined,
              description: $("description").value.trim() || undefined, attributes: values, contact: contact(),
              channel: "agent" } });
    showTicket(ticket, "Ticket created");
  } catch (err) {
    if (err.field && err.field.startsWith("attribute[")) markField($("attributes"), err.field.slice(10, -1), err.message);
    if (err.code === "outside_jurisdiction") whereMessage(err.message, "bad", "outside");
    formMessage(err.message, "bad", err.code === "signed_out");
  } finally {
    $("submit").textContent = "Create ticket";
    $("submit").append(" ", el("kbd", {}, "Ctrl+Enter"));
    setBusy(false);
  }
}

async function attach(dupe) {
  if (state.done) { formMessage(lockedReason()); return; }
  if (state.busy) return;
  const c = contact();
  if (!c.phone && !c.email) { formMessage("Enter the caller's phone or e-mail first, so they hear when it is closed."); $("c-phone").focus(); return; }
  formMessage(null);
  setBusy(true);
  try {
    const ticket = await api(`/agent/requests/${encodeURIComponent(dupe.public_id)}/callers`, {
      method: "POST", body: { contact: c, note: $("description").value.trim() || undefined } });
    showTicket(ticket, "Caller attached to the existing ticket", "caller attached");
  } catch (err) {
    formMessage(err.message);
  } finally {
    setBusy(false);
  }
}

// While one submit or attach is on its way, neither can start another.
function setBusy(busy) {
  state.busy = busy;
  document.querySelectorAll("#duplicates button.attach").forEach((b) => { b.disabled = busy || state.done; });
  $("submit").disabled = busy || state.done || state.inside === false;
}

function showTicket(t, heading, how = "created") {
  state.done = true;
  state.ticket = { public_id: t.public_id, how };
  $("dupes-locked").textContent = lockedReason();
  $("dupes-locked").hidden = false;
  showDuplicates(state.located);
  $("actions").hidden = true;
  document.querySelector(".dock .routing").hidden = true;
  $("submit").disabled = true;
  const box = $("ticket");
  box.hidden = false;
  box.replaceChildren(
    el("p", { class: "muted" }, heading, " — read this number to the caller:"),
    el("p", { class: "number", id: "ticket-number" }, t.public_id),
    el("p", {}, el("strong", {}, t.service_name || state.service?.service_name || ""),
       t.crew ? ` → ${t.crew.name}` : " → unrouted"),
    el("p", {}, "Expected by ", el("strong", {}, t.expected_at ? formatDate(t.expected_at) : "no target date")),
    el("button", { type: "button", class: "primary", onclick: newCall }, "Next call"));
  box.focus();
  mapView.refreshRequests();
  loadRecent();
}

function newCall() {
  $("call-form").reset();
  addressBox.clear(); serviceBox.clear();     // else ↓ in the empty box offers the last call's places
  Object.assign(state, { lat: null, lon: null, inside: null, located: null, service: null, candidate: null,
                         key: newIdempotencyKey(), done: false, ticket: null });
  $("dupes-locked").hidden = true;
  dismissWeak();
  ["attributes", "caller-history"].forEach((id) => $(id).replaceChildren());
  ["ticket", "place", "service-chosen"].forEach((id) => { $(id).hidden = true; });
  whereMessage(null); formMessage(null); showRouting(null); showDuplicates(null);
  mapView.clearPin();
  $("actions").hidden = false;
  document.querySelector(".dock .routing").hidden = false;
  $("submit").disabled = false;
  history.replaceState(null, "", "/agent/");
  $("c-phone").focus();
}

// --- the caller ----------------------------------------------------------------------------------------
function showCaller(data) {
  const c = data.contact || {};
  const fill = (id, v) => { if (v && !$(id).value) $(id).value = v; };
  fill("c-phone", c.phone || data.phone); fill("c-first", c.first_name); fill("c-last", c.last_name); fill("c-email", c.email);
  const box = $("caller-history");
  const head = data.tickets.length
    ? `${data.tickets.length} earlier ticket${data.tickets.length > 1 ? "s" : ""}, ${data.open} open`
    : "No earlier tickets for this number.";
  box.replaceChildren(el("p", { class: "muted" }, head), el("ul", {}, data.tickets.map((t) => el("li", {},
    el("button", { type: "button", class: `ticket-line ${t.status}`, onclick: () => ticketView.show(t.public_id) },
       el("strong", {}, `#${t.public_id}`), ` ${t.service_name} · `, el("span", { class: "status" }, t.status.replace("_", " ")),
       el("span", { class: "due" }, t.status === "closed" ? ` · closed ${formatDate(t.closed_at)}`
         : ` · expected ${t.expected_at ? formatDate(t.expected_at) : "—"}`),
       el("span", { class: "muted" }, ` · ${[t.address, formatDate(t.requested_at)].filter(Boolean).join(" · ")}`))))));
}

async function lookupCaller() {
  const phone = $("c-phone").value.trim();
  if (!phone) { $("c-phone").focus(); return; }
  try { showCaller(await api(`/agent/callers?${query({ phone })}`)); }
  catch (err) { $("caller-history").replaceChildren(el("p", { class: "alert bad" }, err.message)); }
}

async function loadRecent() {
  try {
    const { tickets } = await api("/agent/recent");
    $("recent-list").replaceChildren(...tickets.map((t) => el("li", {},
      el("button", { type: "button", class: `ticket-line ${t.status}`, onclick: () => ticketView.show(t.public_id) },
        el("strong", {}, `#${t.public_id}`), ` ${t.service_name} · `, el("span", { class: "status" }, t.status.replace("_", " ")),
        el("span", { class: "muted" }, ` · ${t.kind === "caller_attached" ? "caller attached" : "created"}`
          + ` · ${t.crew_name || "unrouted"} · ${settings.role !== "agent" ? t.actor + " · " : ""}${formatDate(t.at)}`)))));
  } catch { /* shown again on the next ticket */ }
}

function debounced(fn, ms) {
  let timer, pending;
  return (q) => new Promise((resolve, reject) => {
    clearTimeout(timer);
    if (pending) pending.reject(Object.assign(new Error("superseded"), { name: "AbortError" }));
    pending = { reject };
    timer = setTimeout(() => { pending = null; fn(q).then(resolve, reject); }, ms);
  });
}

// --- wiring ------------------------------------------------------------------------------------------------
$("call-form").addEventListener("submit", submit);
$("lookup-caller").addEventListener("click", lookupCaller);
$("new-call").addEventListener("click", newCall);
$("ticket-find").addEventListener("submit", (e) => { e.preventDefault(); ticketView.show($("find-ticket").value); });
$("ticket-view").addEventListener("keydown", (e) => { if (e.key === "Escape") ticketView.close(); });
document.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
  else if (e.altKey && (e.key === "a" || e.key === "A")) { e.preventDefault(); $("address-search").focus(); }
  else if (e.altKey && (e.key === "c" || e.key === "C")) { e.preventDefault(); $("service-search").focus(); }
});
// Focus never hides under the sticky dock (WCAG 2.4.11). The panel's scroll padding (kept at the dock's
// height, which changes with a message or the ticket) covers fields scrolled in from out of view; Chromium
// does not scroll a field that is only partly covered, so that one is scrolled clear here.
const panel = document.querySelector(".panel");
const dock = document.querySelector(".dock");
new ResizeObserver(() => panel.style.setProperty("--dock-height", `${dock.offsetHeight}px`)).observe(dock);
panel.addEventListener("focusin", (e) => {
  if (dock.contains(e.target)) return;
  const f = e.target.getBoundingClientRect(), d = dock.getBoundingClientRect();
  const covered = f.bottom > d.top && f.top < d.bottom && f.right > d.left && f.left < d.right;
  if (covered) panel.scrollTop += f.bottom - d.top + 8;
});
if (call) showCaller(call);
showDuplicates(null);
loadRecent();
const relocateSoon = debounce(() => { if (state.lat !== null && !state.done) locate(); }, 400);
// Category names for the live feed (the notification carries only the code).
const serviceNames = {};
api("/api/v1/services?limit=200").then(({ services }) => services.forEach((s) => { serviceNames[s.service_code] = s.service_name; }))
  .catch(() => {});
startLive({ names: serviceNames, onRequest: () => { mapView.refreshRequests(); relocateSoon(); }, onResync: () => mapView.refreshRequests() });
(call ? $("address-search") : $("c-phone")).focus();
