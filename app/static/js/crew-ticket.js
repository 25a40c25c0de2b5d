// One ticket: where it is, and the crew's actions. Each action gets an idempotency key, is saved in
// the page's queue first and then sent; without a connection it waits there and is replayed when
// the connection returns (crew-queue.js), so nothing is lost and nothing is done twice.
import { makeMap, whenLoaded } from "./crew-map.js";
import { describeQueue, enqueue, flush, lastPosition, newKey, pending, rememberPosition, startReplaying } from "./crew-queue.js";
import { showRefused } from "./crew-refused.js";

const settings = JSON.parse(document.getElementById("crew-settings").textContent);
const ticket = settings.ticket;
const ticketUrl = `/crew/tickets/${encodeURIComponent(ticket.public_id)}`;
const actionUrl = `${ticketUrl}/actions`;
const $ = (id) => document.getElementById(id);
const message = $("action-message");
const queueStatus = $("queue-status");
const DONE_TEXT = { accept: "Accepted", start: "Started", close: "Closed", reassign: "Reassigned", note: "Note added",
                    reopen: "Reopened", duplicate: "Closed as a duplicate" };
const STATUS_AFTER = { accept: "acknowledged", start: "in_progress", close: "closed", reopen: "open", duplicate: "closed" };
const current = { status: ticket.status, mayAct: true };
// Actions taken on this page (key → the form they came from, or null for a button): their answer is
// shown here, with the form still filled in when refused, so they need no place in the refused list.
const sentHere = new Map();

const map = makeMap("map", settings, [ticket.lon, ticket.lat], 16);
new maplibregl.Marker({ color: "#b42318" }).setLngLat([ticket.lon, ticket.lat]).addTo(map);
const me = lastPosition();
if (me) {
  new maplibregl.Marker({ color: "#0b5cad", scale: 0.7 }).setLngLat([me.lon, me.lat]).addTo(map);
  whenLoaded(map).then(() => map.fitBounds(new maplibregl.LngLatBounds([me.lon, me.lat], [me.lon, me.lat]).extend([ticket.lon, ticket.lat]),
                                          { padding: 50, maxZoom: 17, duration: 0 }));
}
// Keep the position fresh while on the ticket (it goes with every action, for nearest-crew routing).
if ("geolocation" in navigator && !(me && me.manual)) {
  navigator.geolocation.getCurrentPosition((p) => rememberPosition(p.coords.latitude, p.coords.longitude, false),
                                           () => {}, { enableHighAccuracy: true, maximumAge: 30000, timeout: 10000 });
}

function say(text, kind) {
  message.hidden = false;
  message.textContent = text;
  message.className = `alert ${kind || ""}`;
  message.dataset.kind = kind || "";
}

function setStatus(status) {
  current.status = status;
  const badge = $("status");
  badge.textContent = status.replace("_", " ");
  badge.className = `badge status-${status}`;
  const buttons = document.querySelectorAll("[data-action=accept], [data-action=start]");
  for (const b of buttons) {
    b.disabled = (b.dataset.action === "accept" && status !== "open") ||
                 (b.dataset.action === "start" && !["open", "acknowledged"].includes(status));
  }
  if ($("actions")) $("actions").hidden = status === "closed" || !current.mayAct;
  if ($("note-box")) $("note-box").hidden = !current.mayAct;
  showBox("reopen-box", status === "closed");          // supervisors only
  showBox("duplicate-box", status !== "closed");
}

function showBox(id, shown) {
  const box = $(id);
  if (!box) return;
  if (!shown) box.open = false;                        // folded when it comes back
  box.hidden = !shown;
}

// The ticket as the server has it now: after an action's answer the header (crew, status, due date),
// the history and which actions are offered follow what happened — also what someone else did.
async function refresh() {
  let state;
  try {
    const res = await fetch(`${ticketUrl}/state`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!res.ok || !(res.headers.get("content-type") || "").includes("json")) return;
    state = await res.json();
  } catch {
    return;   // no connection: the page stays as it is until the next answer
  }
  $("ticket-head").innerHTML = state.head;
  $("history").innerHTML = state.history;
  current.mayAct = state.may_act;
  // no longer this crew's ticket: its callers and photos go, as they would on a reload
  for (const el of [$("contacts"), document.querySelector(".photos")]) if (el) el.closest("section").hidden = !state.may_act;
  for (const option of document.querySelectorAll("#reassign-crew option[value]:not([value=''])")) {
    option.disabled = option.value === state.crew_code;
  }
  setStatus(state.status);
}

function lockActions(locked) {
  for (const el of document.querySelectorAll("#actions button, #note-form button, #supervise button")) el.disabled = locked;
  if (!locked) setStatus(current.status);
}

const WHY_QUEUED = {
  "signed-out": "You are signed out: sign in again in another tab; it will be sent then.",
  "other-user": "Someone else signed in on this browser: it will be sent when you sign in again.",
};

// → true when the answer is shown on this page (a refused action then needs no place in the refused list)
function onResult(item, result) {
  describeQueue(queueStatus);
  if (item.url !== actionUrl) return false;
  const name = item.fields.action;
  const here = sentHere.has(item.key);
  if (result.state === "done") {
    if (sentHere.get(item.key)) sentHere.get(item.key).reset();   // only on success: never lose what was typed
    sentHere.delete(item.key);
    lockActions(false);
    setStatus(result.body.status);
    say(`${DONE_TEXT[name]}${result.body.repeated ? " (already received)" : ""}.`, "ok");
    refresh();
    return true;
  }
  if (result.state === "refused") {
    sentHere.delete(item.key);
    lockActions(false);
    say(`Not done: ${result.message}${here ? "" : " — what you wrote is kept at the top of the page."}`, "bad");
    refresh();
    return here;
  }
  const why = WHY_QUEUED[result.why] || "No connection: saved on this phone, it will be sent when the connection is back.";
  say(`${DONE_TEXT[name]} — ${why}`, "queued");
  if (STATUS_AFTER[name]) $("status").textContent = `${STATUS_AFTER[name].replace("_", " ")} (waiting to send)`;
  return false;
}

async function act(name, fields, photo, form) {
  const pos = lastPosition();
  const item = { key: newKey(), url: actionUrl, label: `${name} #${ticket.public_id}`,
                 fields: { action: name, ...fields, ...(pos ? { lat: pos.lat, lon: pos.lon } : {}) } };
  sentHere.set(item.key, form || null);
  lockActions(true);
  say("Sending…", "");
  await enqueue(item, photo);
  describeQueue(queueStatus);
  await flush(onResult);
}

for (const button of document.querySelectorAll("button[data-action]")) {
  button.addEventListener("click", () => act(button.dataset.action, {}));
}
for (const form of document.querySelectorAll("form[data-action]")) {
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!form.reportValidity()) return;
    const fields = {};
    let photo = null;
    for (const [k, v] of new FormData(form).entries()) {
      if (v instanceof File) { if (v.size) photo = v; } else fields[k] = v;
    }
    act(form.dataset.action, fields, photo, form);
  });
}

describeQueue(queueStatus);
showRefused();
// An action of this ticket still waiting from an earlier visit: wait for it rather than act twice.
const waiting = pending().find((i) => i.url === actionUrl);
if (waiting) {
  lockActions(true);
  say(`${DONE_TEXT[waiting.fields.action]} — saved on this phone, waiting for the connection to send it.`, "queued");
}
startReplaying(onResult);
