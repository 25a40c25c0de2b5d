// One ticket: where it is, and the crew's actions. Each action gets an idempotency key, is saved in
// the page's queue first and then sent; without a connection it waits there and is replayed when
// the connection returns (crew-queue.js), so nothing is lost and nothing is done twice.
// Without a connection the crew goes on working: accept, start, notes, close — each saved in order,
// its form emptied once it is safe in the queue (the waiting list shows what was typed), and the page
// shows the ticket as it will be once they are sent ("closed (waiting to send)").
import { makeMap, whenLoaded } from "./crew-map.js";
import { OFFLINE_COPY } from "./crew-offline.js";
import { showOutbox } from "./crew-outbox.js";
import { NotSaved, describeQueue, enqueue, flush, lastPosition, newKey, outcome, pending, rememberPosition,
         startReplaying } from "./crew-queue.js";
import { ACTION_TEXT, showRefused } from "./crew-refused.js";

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
// The ticket as the server last said (status, whether this user may act), and whether a send is under way.
const current = { status: ticket.status, mayAct: true, locked: false };
// Actions taken on this page and still awaited here (key → {name, form or null for a button}): their
// answer is shown here, with the form still filled in when refused, so they need no place in the
// refused list. An action that has to wait for the connection leaves this map (and its form).
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

// The ticket as it will be once this phone's actions for it waiting to be sent have gone.
function projected() {
  const waiting = pending().filter((item) => item.url === actionUrl);
  let { status, mayAct } = current;
  for (const item of waiting) {
    status = STATUS_AFTER[item.fields.action] || status;
    if (item.fields.action === "reassign") mayAct = false;      // handed on: no more actions from here
  }
  return { status, mayAct, waiting: waiting.length };
}

function setStatus(status) {
  current.status = status;
  show();
}

function show() {
  const { status, mayAct, waiting } = projected();
  const badge = $("status");
  badge.textContent = status.replace("_", " ") + (waiting ? " (waiting to send)" : "");
  badge.className = `badge status-${status}`;
  badge.dataset.waiting = String(waiting);
  const buttons = document.querySelectorAll("[data-action=accept], [data-action=start]");
  for (const b of buttons) {
    b.disabled = current.locked || (b.dataset.action === "accept" && status !== "open") ||
                 (b.dataset.action === "start" && !["open", "acknowledged"].includes(status));
  }
  if ($("actions")) $("actions").hidden = status === "closed" || !mayAct;
  if ($("note-box")) $("note-box").hidden = !mayAct;
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
// Without a connection the service worker answers with the last state it saw (stamped with when):
// on an offline copy of the page it is used only when newer than the copy (newerThan).
async function refresh(newerThan) {
  let state;
  try {
    const res = await fetch(`${ticketUrl}/state`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!res.ok || !(res.headers.get("content-type") || "").includes("json")) return;
    const storedAt = Number(res.headers.get("X-Pin311-Stored-At") || 0);
    if (newerThan && storedAt && storedAt < newerThan) return;
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
  current.locked = locked;
  for (const el of document.querySelectorAll("#actions button, #note-form button, #supervise button")) el.disabled = locked;
  if (!locked) show();
}

const WHY_QUEUED = {
  "signed-out": "You are signed out: sign in again in another tab; it will be sent then.",
  "other-user": "Someone else signed in on this browser: it will be sent when you sign in again.",
};

let lastWhy = null;      // why the last round stopped (no connection, signed out, someone else signed in)

// → true when the answer is shown on this page (a refused action then needs no place in the refused list)
function onResult(item, result) {
  describeQueue(queueStatus);
  if (result.state === "queued") lastWhy = result.why;
  if (item.url !== actionUrl) return false;
  return answer(item.key, item.fields.action, result);
}

function answer(key, name, result) {
  const here = sentHere.get(key);
  sentHere.delete(key);
  if (result.state === "done") {
    if (here && here.form) here.form.reset();     // only once it is safe: never lose what was typed
    lockActions(false);
    setStatus(result.body.status);
    say(`${DONE_TEXT[name]}${result.body.repeated ? " (already received)" : ""}.`, "ok");
    refresh();
    return true;
  }
  if (result.state === "refused") {
    lockActions(false);
    say(`${ACTION_TEXT[name] || name} not done: ${result.message}` +
        `${here ? "" : " — what you wrote is kept at the top of the page."}`, "bad");
    refresh();
    return !!here;
  }
  // Waiting for the connection: it is safe in the queue, listed with what was typed, so its form is
  // emptied for the next action (a second note is not the first one sent twice). One taken earlier
  // (a retry in the background) changes nothing on the page.
  if (!here) return false;
  if (here.form) here.form.reset();
  lockActions(false);
  const why = WHY_QUEUED[result.why] || "No connection: saved on this phone, it will be sent when the connection is back.";
  say(`${DONE_TEXT[name]} — ${why}`, "queued");
  return false;
}

// After a round: an action of this page not answered in it was sent by another tab (its answer is in
// the sent or refused list), or waits behind an older one that could not be sent.
function settle() {
  for (const [key, { name }] of sentHere) {
    const known = pending().some((item) => item.key === key) ? { state: "queued", why: lastWhy } : outcome(key);
    if (known) {
      answer(key, name, known);
    } else {
      sentHere.delete(key);
      lockActions(false);
      refresh();
    }
  }
}

async function act(name, fields, photo, form) {
  const pos = lastPosition();
  const item = { key: newKey(), url: actionUrl, label: `${name} #${ticket.public_id}`,
                 fields: { action: name, ...fields, ...(pos ? { lat: pos.lat, lon: pos.lon } : {}) } };
  sentHere.set(item.key, { name, form: form || null });
  lockActions(true);
  say(navigator.onLine ? "Sending…" : "Saving on this phone…", "");
  try {
    await enqueue(item, photo);
  } catch (err) {
    sentHere.delete(item.key);
    lockActions(false);
    say(`Not saved: ${err instanceof NotSaved ? err.message : "this phone could not keep it"}. ` +
        "What you typed is still in the form.", "bad");
    return;
  }
  describeQueue(queueStatus);
  await flush(onResult);
  settle();
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

for (const event of ["pin311:queue", "storage"]) {   // "storage": another tab queued or sent one
  window.addEventListener(event, () => { show(); describeQueue(queueStatus); });
}
describeQueue(queueStatus);
showRefused();
showOutbox();
show();
if (OFFLINE_COPY) refresh(OFFLINE_COPY);           // the last state seen, when newer than this copy
const waiting = pending().filter((i) => i.url === actionUrl).length;
if (waiting) {
  say(`${waiting === 1 ? "1 action" : `${waiting} actions`} for this ticket saved on this phone, ` +
      "sent when the connection is back.", "queued");
}
startReplaying(onResult);
