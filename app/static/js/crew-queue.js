// The crew's offline queue. Every action is written to localStorage BEFORE it is sent, with the
// idempotency key made for it, and leaves the queue only when the server has answered for it
// (done, or refused for good). A dropped connection, a closed tab or a server restart therefore
// loses nothing, and a replay of an action the server already has is answered "repeated" — the
// server never closes twice.
//
// A phone may be shared: every saved item carries the username of who took it, and is sent only
// while that same person is signed in (the server checks it too); anyone else's items are held and
// shown as waiting for them. Signing out forgets the cached lists and position, not the held actions.
const QUEUE = "pin311.crew.queue";
const REFUSED = "pin311.crew.refused";
const CACHE = "pin311.crew.";                      // prefix of everything this phone keeps for the crew
const RETRY_MS = 10000;
export const ME = JSON.parse(document.getElementById("crew-settings").textContent).user;
let flushing = null;

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

function drop(key) { save(everything().filter((item) => item.key !== key)); }

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

// On sign-out: forget the cached lists and position (the next person on this phone is someone else).
function forgetOnSignOut() {
  const form = document.querySelector("form[action$='/logout']");
  if (!form) return;
  form.addEventListener("submit", () => {
    for (const name of Object.keys(localStorage)) {
      if (name.startsWith(CACHE) && name !== QUEUE && name !== REFUSED) localStorage.removeItem(name);
    }
  });
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

// item: {key, url, label, fields: {action, ...}}; photo: a File or null.
export async function enqueue(item, photo) {
  const entry = { ...item, user: ME, queuedAt: Date.now(), photo: null, photoName: photo ? photo.name : null };
  if (photo) entry.photo = await readAsDataUrl(photo);
  const queue = everything();
  queue.push(entry);
  try {
    save(queue);
  } catch (err) {   // quota: keep a smaller copy of the photo rather than lose the action
    entry.photo = photo ? await shrink(photo) : null;
    save(queue);
  }
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
                                  headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" } });
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

// Send the signed-in user's waiting actions, oldest first (and any saved while sending); one flush
// at a time. onResult(item, result) per item; a refused action goes to the list of refused ones
// (shown by crew-refused.js) unless onResult returns true: the page showed it, its form still filled in.
export function flush(onResult) {
  if (flushing) return flushing;
  flushing = (async () => {
    const tried = new Set();
    let item;
    while ((item = pending().find((i) => !tried.has(i.key)))) {
      tried.add(item.key);
      const result = await sendOne(item);
      if (result.state === "queued") { onResult && onResult(item, result); break; }
      drop(item.key);
      const shown = onResult ? onResult(item, result) : false;
      if (result.state === "refused" && !shown) rememberRefused(item, result.message);
    }
  })().finally(() => { flushing = null; });
  return flushing;
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
  saveRefused([...allRefused(), { ...kept, hadPhoto: !!photo, message, refusedAt: Date.now() }]);
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
