// The crew's offline queue. Every action is written to localStorage BEFORE it is sent, with the
// idempotency key made for it, and leaves the queue only when the server has answered for it
// (done, or refused for good). A dropped connection, a closed tab or a server restart therefore
// loses nothing, and a replay of an action the server already has is answered "repeated" — the
// server never closes twice.
const QUEUE = "pin311.crew.queue";
const POSITION = "pin311.crew.position";
const RETRY_MS = 10000;
let flushing = null;

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function pending() {
  try { return JSON.parse(localStorage.getItem(QUEUE) || "[]"); } catch { return []; }
}

function save(queue) { localStorage.setItem(QUEUE, JSON.stringify(queue)); }

function drop(key) { save(pending().filter((item) => item.key !== key)); }

export function rememberPosition(lat, lon, manual) {
  localStorage.setItem(POSITION, JSON.stringify({ lat, lon, manual: !!manual, at: Date.now() }));
}

export function lastPosition() {
  try { return JSON.parse(localStorage.getItem(POSITION) || "null"); } catch { return null; }
}

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
  const entry = { ...item, queuedAt: Date.now(), photo: null, photoName: photo ? photo.name : null };
  if (photo) entry.photo = await readAsDataUrl(photo);
  const queue = pending();
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
  if (res.status === 400 && /csrf/i.test(body.message || "") && !retried) {
    return (await freshToken()) ? sendOne(item, true) : { state: "queued", why: "signed-out" };
  }
  if (res.status >= 500 || res.status === 429 || !isJson) return { state: "queued", why: "server" };
  return { state: "refused", message: body.message || `refused (${res.status})` };
}

// Send everything waiting, oldest first; one flush at a time. onResult(item, result) per item.
export function flush(onResult) {
  if (flushing) return flushing;
  flushing = (async () => {
    for (const item of pending()) {
      const result = await sendOne(item);
      if (result.state === "queued") { onResult && onResult(item, result); break; }
      drop(item.key);
      onResult && onResult(item, result);
    }
  })().finally(() => { flushing = null; });
  return flushing;
}

export function startReplaying(onResult) {
  window.addEventListener("online", () => flush(onResult));
  setInterval(() => { if (pending().length && navigator.onLine) flush(onResult); }, RETRY_MS);
  if (pending().length) flush(onResult);
}

export function describeQueue(el) {
  const n = pending().length;
  el.hidden = n === 0;
  el.textContent = n ? `${n} action${n > 1 ? "s" : ""} saved on this phone, sent when the connection is back` : "";
}
