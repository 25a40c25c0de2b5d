// The crew's offline queue. Every action is written to localStorage BEFORE it is sent, with the
// idempotency key made for it, and leaves the queue only when the server has answered for it
// (done, or refused for good). A dropped connection, a closed tab or a server restart therefore
// loses nothing, and a replay of an action the server already has is answered "repeated" — the
// server never closes twice.
//
// Any number of actions may wait, on one ticket and on several: they are sent one at a time, oldest
// first, by one tab at a time (a Web Lock), so the server applies them in the order they were taken.
// The first that cannot be sent (no connection, signed out) stops the round; a refused one does not
// (each action is answered for itself, and its text is kept in the refused list). What was sent is
// logged (SENT, the last few) so the crew can see it went.
//
// A phone may be shared: every saved item carries the username of who took it, and is sent only
// while that same person is signed in (the server checks it too); anyone else's items are held and
// shown as waiting for them. Signing out forgets the cached lists, position, sent-log and the
// offline copies of the pages (crew-forget.js), not the held actions.
import { forgetCrewData } from "./crew-forget.js";

const QUEUE = "pin311.crew.queue";
const REFUSED = "pin311.crew.refused";
const SENT = "pin311.crew.sent";
const CACHE = "pin311.crew.";                      // prefix of everything this phone keeps for the crew
const SENT_KEPT = 30;
const RETRY_MS = 10000;
const SEND_TIMEOUT_MS = 30000;                     // a send hanging on a weak signal counts as "no connection"
export const ME = JSON.parse(document.getElementById("crew-settings").textContent).user;

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function everything() {
  try { return JSON.parse(localStorage.getItem(QUEUE) || "[]"); } catch { return []; }
}

// The signed-in user's actions waiting to be sent, oldest first.
export function pending() { return everything().filter((item) => item.user === ME); }

// Other people's actions saved on this phone, held until they sign in again.
export function held() { return everything().filter((item) => item.user !== ME); }

function save(queue) { localStorage.setItem(QUEUE, JSON.stringify(queue)); }

// Pages listen for "pin311:queue" (this tab) and "storage" (another tab) to show the queue again.
function changed() { window.dispatchEvent(new Event("pin311:queue")); }

function drop(key) { save(everything().filter((item) => item.key !== key)); changed(); }

// The ticket number an item acts on (its url is /crew/tickets/<number>/actions).
export function ticketOf(item) { return decodeURIComponent(item.url.split("/")[3] || ""); }

// Something cached for the signed-in user only (the last ticket lists); null for anyone else's.
export function remember(name, value) {
  try { localStorage.setItem(CACHE + name, JSON.stringify({ ...value, user: ME })); } catch { /* full */ }
}

export function recall(name) {
  try {
    const value = JSON.parse(localStorage.getItem(CACHE + name) || "null");
    return value && value.user === ME ? value : null;
  } catch { return null; }
}

export function rememberPosition(lat, lon, manual) {
  remember("position", { lat, lon, manual: !!manual, at: Date.now() });
}

export function lastPosition() { return recall("position"); }

// On sign-out: forget what was kept for this person (the next one on this phone is someone else) before
// the form goes — at most two seconds, so a stuck storage never keeps anyone signed in.
function forgetOnSignOut() {
  const form = document.querySelector("form[action$='/logout']");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const enough = new Promise((resolve) => setTimeout(resolve, 2000));
    Promise.race([forgetCrewData(), enough]).catch(() => {}).finally(() => form.submit());
  }, { once: true });
}
forgetOnSignOut();

function readAsDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// A smaller upright JPEG when the original does not fit in the page's storage.
async function shrink(file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, 1600 / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL("image/jpeg", 0.85);
}

// Decoded by hand: fetch(data:…) is refused by the page's Content-Security-Policy (connect-src 'self').
function dataUrlToBlob(url) {
  const [head, b64] = url.split(",", 2);
  const bytes = atob(b64);
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes.charCodeAt(i);
  return new Blob([out], { type: (head.match(/^data:([^;,]+)/) || [])[1] || "application/octet-stream" });
}

export class NotSaved extends Error {}

// item: {key, url, label, fields: {action, ...}}; photo: a File or null. Throws NotSaved when the
// phone's storage cannot take it even with a smaller photo (nothing is lost: the form is still filled).
export async function enqueue(item, photo) {
  const entry = { ...item, user: ME, queuedAt: Date.now(), photo: null, photoName: photo ? photo.name : null };
  if (photo) entry.photo = await readAsDataUrl(photo);
  const queue = everything();
  queue.push(entry);
  try {
    save(queue);
  } catch (err) {   // quota: keep a smaller copy of the photo rather than lose the action
    try {
      entry.photo = photo ? await shrink(photo) : null;
      save(queue);
    } catch {
      throw new NotSaved("this phone has no room left to keep it (photos take the most): send what is waiting " +
                         "first, or leave the photo out");
    }
  }
  changed();
  return entry;
}

function csrfToken() { return document.querySelector('meta[name="csrf-token"]').content; }

async function freshToken() {
  const res = await fetch("/crew/csrf-token", { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!res.ok || !(res.headers.get("content-type") || "").includes("json")) return null;
  const token = (await res.json()).token;
  document.querySelector('meta[name="csrf-token"]').content = token;
  return token;
}

// → {state: "done", body} | {state: "queued", why} | {state: "refused", message}
async function sendOne(item, retried = false) {
  const form = new FormData();
  for (const [k, v] of Object.entries(item.fields)) if (v !== null && v !== undefined && v !== "") form.append(k, v);
  form.append("key", item.key);
  form.append("user", item.user);
  if (item.photo) form.append("photo", dataUrlToBlob(item.photo), item.photoName || "photo.jpg");
  let res;
  try {
    res = await fetch(item.url, { method: "POST", body: form, credentials: "same-origin", redirect: "manual",
                                  headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
                                  signal: AbortSignal.timeout(SEND_TIMEOUT_MS) });
  } catch (err) {
    return { state: "queued", why: "offline" };
  }
  if (res.type === "opaqueredirect" || res.status === 401) return { state: "queued", why: "signed-out" };
  const isJson = (res.headers.get("content-type") || "").includes("json");
  const body = isJson ? await res.json() : {};
  if (res.ok) return { state: "done", body };
  if (body.error === "other_user") return { state: "queued", why: "other-user" };   // this tab's user signed out
  if (res.status === 400 && /csrf/i.test(body.message || "") && !retried) {
    return (await freshToken()) ? sendOne(item, true) : { state: "queued", why: "signed-out" };
  }
  if (res.status >= 500 || res.status === 429 || !isJson) return { state: "queued", why: "server" };
  return { state: "refused", message: body.message || `refused (${res.status})` };
}

// Send the signed-in user's waiting actions, oldest first (and any saved while sending). Rounds run one
// after another in this tab, and under a Web Lock across tabs, so no two tabs send at once (the order
// would still hold, item by item, but both would show the answers). onResult(item, result) per item;
// a refused action goes to the list of refused ones (shown by crew-refused.js) unless onResult returns
// true: the page showed it, its form still filled in.
let rounds = Promise.resolve();

export function flush(onResult) {
  const round = () => sendWaiting(onResult);
  const locked = navigator.locks ? () => navigator.locks.request("pin311.crew.flush", round) : round;
  rounds = rounds.then(locked, locked);
  return rounds.catch(() => {});
}

async function sendWaiting(onResult) {
  const tried = new Set();
  let item;
  while ((item = pending().find((i) => !tried.has(i.key)))) {
    tried.add(item.key);
    const result = await sendOne(item);
    if (result.state === "queued") { onResult && onResult(item, result); break; }
    if (result.state === "done") rememberSent(item, result.body);
    drop(item.key);
    const shown = onResult ? onResult(item, result) : false;
    if (result.state === "refused" && !shown) rememberRefused(item, result.message);
  }
}

export function startReplaying(onResult) {
  window.addEventListener("online", () => flush(onResult));
  setInterval(() => { if (pending().length && navigator.onLine) flush(onResult); }, RETRY_MS);
  if (pending().length) flush(onResult);
}

// Actions the server refused on replay (the ticket changed meanwhile): kept, with what the crew wrote,
// until the crew dismisses them. The photo is not kept. Pages listen for "pin311:refused".
function allRefused() {
  try { return JSON.parse(localStorage.getItem(REFUSED) || "[]"); } catch { return []; }
}

export function refused() { return allRefused().filter((item) => item.user === ME); }

function saveRefused(list) {
  localStorage.setItem(REFUSED, JSON.stringify(list));
  window.dispatchEvent(new Event("pin311:refused"));
}

function rememberRefused(item, message) {
  const { photo, ...kept } = item;
  const others = allRefused().filter((i) => i.key !== item.key);
  saveRefused([...others, { ...kept, hadPhoto: !!photo, message, refusedAt: Date.now() }]);
}

// The last actions sent (no photo, no text: what was done to which ticket, and when), for the crew to
// see they went. Forgotten on sign-out.
function allSent() {
  try { return JSON.parse(localStorage.getItem(SENT) || "[]"); } catch { return []; }
}

export function sent() { return allSent().filter((item) => item.user === ME); }

function rememberSent(item, body) {
  const entry = { key: item.key, user: item.user, url: item.url, action: item.fields.action, status: body.status,
                  repeated: !!body.repeated, sentAt: Date.now() };
  try {
    localStorage.setItem(SENT, JSON.stringify([...allSent().filter((i) => i.key !== item.key), entry].slice(-SENT_KEPT)));
  } catch { /* full: the log is a courtesy, the action was sent */ }
}

// What became of an action that left the queue (perhaps sent by another tab): the server's answer as
// flush reports it, or null while it is still waiting or unknown.
export function outcome(key) {
  const done = sent().find((i) => i.key === key);
  if (done) return { state: "done", body: { status: done.status, repeated: done.repeated } };
  const no = refused().find((i) => i.key === key);
  return no ? { state: "refused", message: no.message } : null;
}

export function dismissRefused(key) { saveRefused(allRefused().filter((item) => item.key !== key)); }

// Items saved before the queue noted who took them: nobody can tell whose they are, so they are not
// sent under anyone's name; they go to the refused list, where what was written can still be read.
function setAsideUnowned() {
  const unowned = everything().filter((item) => !item.user);
  if (!unowned.length || !ME) return;
  save(everything().filter((item) => item.user));
  for (const item of unowned) {
    rememberRefused({ ...item, user: ME }, "saved on this phone without the name of who took it, so not sent");
  }
}
setAsideUnowned();

function actions(n) { return `${n} action${n > 1 ? "s" : ""}`; }

export function describeQueue(el) {
  const n = pending().length;
  const others = {};
  for (const item of held()) others[item.user] = (others[item.user] || 0) + 1;
  const lines = n ? [`${actions(n)} saved on this phone, sent when the connection is back.`] : [];
  for (const [user, count] of Object.entries(others)) {
    lines.push(`${actions(count)} saved on this phone by ${user}, held until ${user} signs in again.`);
  }
  el.hidden = lines.length === 0;
  el.textContent = lines.join(" ");
}
