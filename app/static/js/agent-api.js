// Calls to the JSON API and the console's staff endpoints, with the session's CSRF token.
// Every failure becomes an ApiError with a message fit to show an agent (never a raw error).

let csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || "";

export class ApiError extends Error {
  constructor(message, { code = "error", field = null, candidates = null, status = 0 } = {}) {
    super(message);
    Object.assign(this, { code, field, candidates, status });
  }
}

const FRIENDLY = {
  0: "The server cannot be reached. Check the connection and try again.",
  401: "Your session has ended: sign in again in a new tab, then submit here again (this form is kept).",
  403: "Your account may not do this.",
  429: "Too many requests at once; wait a moment and try again.",
  500: "Something went wrong on the server; nothing was saved. Try again.",
  503: "The service is briefly unavailable. Try again in a few seconds.",
};

export async function api(url, { method = "GET", body, headers = {}, signal, retried = false } = {}) {
  let response;
  try {
    response = await fetch(url, {
      method, signal, credentials: "same-origin", redirect: "follow",
      headers: {
        Accept: "application/json",
        ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
        ...(method !== "GET" ? { "X-CSRFToken": csrfToken } : {}),
        ...headers,
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(FRIENDLY[0]);
  }
  const type = response.headers.get("Content-Type") || "";
  // A session that expired is redirected to the sign-in page, which is HTML.
  if (response.redirected && new URL(response.url).pathname.startsWith("/login")) {
    throw new ApiError(FRIENDLY[401], { code: "signed_out", status: 401 });
  }
  if (!type.includes("json")) {
    throw new ApiError(FRIENDLY[response.status] || FRIENDLY[500], { status: response.status });
  }
  const data = await response.json();
  if (!response.ok) {
    // The JSON API answers a lost session with "forbidden" or a CSRF refusal: say what it means here.
    const csrfRefused = /csrf/i.test(data.message || "");
    if ((response.status === 403 || csrfRefused) && await signedOut()) {
      throw new ApiError(FRIENDLY[401], { code: "signed_out", status: 401 });
    }
    if (csrfRefused && !retried && await refreshCsrfToken()) {   // signed in again in another tab
      return api(url, { method, body, headers, signal, retried: true });
    }
    const message = data.message || FRIENDLY[response.status] || FRIENDLY[500];
    throw new ApiError(message, { code: data.error, field: data.field, candidates: data.candidates,
                                  status: response.status });
  }
  return data;
}

async function refreshCsrfToken() {
  try {
    const res = await fetch("/agent/csrf-token", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!res.ok || !(res.headers.get("Content-Type") || "").includes("json")) return false;
    csrfToken = (await res.json()).token;
    return Boolean(csrfToken);
  } catch {
    return false;
  }
}

async function signedOut() {
  try {
    const probe = await fetch("/agent/recent", { credentials: "same-origin", redirect: "manual",
                                                 headers: { Accept: "application/json" } });
    return probe.type === "opaqueredirect" || probe.status === 401 || probe.status === 302;
  } catch {
    return false;
  }
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else if (v !== null && v !== undefined && v !== "") q.append(k, v);
  }
  return q.toString();
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

export function newIdempotencyKey() {
  if (crypto.randomUUID) return `agent-${crypto.randomUUID()}`;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "agent-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatDate(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  // "Sun, Apr 12" reads as this year's April: any other year is written out.
  const year = d.getFullYear() !== new Date().getFullYear() ? { year: "numeric" } : {};
  return d.toLocaleString(undefined, { weekday: "short", day: "numeric", month: "short", ...year, hour: "2-digit",
                                       minute: "2-digit" });
}
