// The crew pages' service worker: served at /crew/sw.js (app/crew/routes.py), so it controls /crew/
// only. It lets a crew member reload or open the crew pages without a connection.
//
// What it keeps on the phone, and why:
//  - SHELL ("pin311-crew-shell-…"): the app's own scripts and styles and MapLibre — what the crew pages
//    need to open at all. Code, no one's data.
//  - PAGES ("pin311-crew-pages"): one person's last copy of the "near me" page and of each ticket page
//    they opened (at most PAGES_KEPT, none older than PAGE_DAYS), and each ticket's last known state
//    (/crew/tickets/N/state) — so the crew sees their last-known tickets without a connection (marked
//    as offline copies) and can queue actions on them. The callers' names and the photos are cut out of
//    each copy before it is kept (the blocks the template marks "offline:omit"): they are not needed to
//    work a ticket offline, so a lost phone holds none. Phones and e-mails are never on crew pages.
//    What the caller wrote (the description, their words about the place) is kept: it is how the crew
//    finds and does the job, and it may name people — one more reason the copies expire and go on sign-out.
//    The copies belong to the person the page names (its crew-settings "user"): a page of anyone else
//    replaces them all; they are deleted when the server answers that nobody (or no crew member) is
//    signed in, on sign-out, and whenever the sign-in page opens (crew-forget.js).
// Nothing else is kept here: the ticket lists are kept by the page (crew-queue.js, same rules), map
// tiles and photos come from the network, and actions (POST) are never touched — the page's queue
// replays them, so this worker never sends anything on anyone's behalf.
// With a connection everything comes from the network first (refreshing the copies on the way), so an
// old copy never hides a newer app or a changed ticket; a page slower than SLOW_MS gives way to its copy.
const SHELL = "pin311-crew-shell-v1";
const PAGES = "pin311-crew-pages";               // the same name in crew-forget.js
const OWNER = "/crew/__owner__";                 // an entry of PAGES: whose copies they are
const PAGE_DAYS = 3;
const PAGES_KEPT = 40;
const SLOW_MS = 6000;
const SHELL_FILES = [
  "/static/css/pin311.css", "/static/css/crew.css",
  "/static/vendor/maplibre-gl/maplibre-gl.css", "/static/vendor/maplibre-gl/maplibre-gl.js",
  "/static/js/crew.js", "/static/js/crew-ticket.js", "/static/js/crew-map.js", "/static/js/crew-queue.js",
  "/static/js/crew-refused.js", "/static/js/crew-outbox.js", "/static/js/crew-offline.js",
  "/static/js/crew-forget.js",
];
const OMIT = /<!-- offline:omit -->[\s\S]*?<!-- \/offline:omit -->/g;
const OMITTED = '<p class="muted offline-omitted">Callers and photos are not kept on this phone: ' +
                "open the ticket with a connection to see them.</p>";
const SETTINGS = /<script id="crew-settings" type="application\/json">([\s\S]*?)<\/script>/;
const TICKET_PAGE = /^\/crew\/tickets\/[^/]+$/;
const TICKET_STATE = /^\/crew\/tickets\/[^/]+\/state$/;

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const shell = await caches.open(SHELL);
    await Promise.all(SHELL_FILES.map((url) => shell.add(url).catch(() => null)));
    // the page that registered this worker was not served through it: keep "near me" now
    const near = `${self.location.origin}/crew/`;
    try { await keep(near, await fetch(near, { redirect: "manual" })); } catch { /* no connection */ }
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("pin311-crew-shell-") && name !== SHELL) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    if (url.pathname === "/crew/" || TICKET_PAGE.test(url.pathname)) event.respondWith(page(event, url));
  } else if (TICKET_STATE.test(url.pathname)) {
    event.respondWith(state(event, url));
  } else if (url.pathname.startsWith("/static/")) {
    event.respondWith(shellFile(event));
  }
});

// --- pages: the network first, the person's copy without a connection -----------------------------

async function page(event, url) {
  const key = url.origin + url.pathname;
  const network = fetch(event.request).then((response) => {
    event.waitUntil(keep(key, response.clone()));
    return response;
  });
  event.waitUntil(network.catch(() => null));
  const copy = await fresh(key);
  try {
    if (!copy) return await network;
    const slow = new Promise((resolve) => setTimeout(resolve, SLOW_MS, copy));
    return await Promise.race([network, slow]);
  } catch {
    return copy || missing(url);
  }
}

// a kept copy still young enough to be shown, or null
async function fresh(key) {
  const copy = await caches.match(key, { cacheName: PAGES, ignoreVary: true });    // never creates the cache
  if (!copy) return null;
  const at = Number(copy.headers.get("X-Pin311-Stored-At") || 0);
  return Date.now() - at <= PAGE_DAYS * 86400e3 ? copy : null;
}

// Keep a copy of a page the network answered: the person's own page, callers and photos cut out,
// marked as a copy (crew-offline.js shows it), with the page's own headers (its CSP among them).
function keep(key, response) {
  return serially(async () => {
    if (signedOut(response)) return caches.delete(PAGES);
    if (response.status !== 200 || !(response.headers.get("Content-Type") || "").startsWith("text/html")) return;
    const html = await response.text();
    const user = ownerOf(html);
    if (!user) return;
    const copy = html.replace(OMIT, OMITTED).replace(/<head>/i, `<head>\n  <meta name="pin311-offline-copy" ` +
                                                       `content="${new Date().toISOString()}">`);
    const pages = await pagesOf(user);
    await pages.put(key, new Response(copy, { status: 200, headers: keptHeaders(response) }));
    await prune(pages);
  });
}

function signedOut(response) {   // sent to sign in (a redirect), or not a crew member: nobody's copies stay
  return response.type === "opaqueredirect" || response.redirected || response.status === 401 ||
         response.status === 403;
}

function ownerOf(html) {
  const settings = html.match(SETTINGS);
  try { return settings ? JSON.parse(settings[1]).user || null : null; } catch { return null; }
}

function keptHeaders(response) {
  const headers = new Headers(response.headers);
  for (const name of ["Content-Length", "Content-Encoding", "Vary", "Set-Cookie"]) headers.delete(name);
  headers.set("X-Pin311-Stored-At", String(Date.now()));
  return headers;
}

// The cache of this person's copies: someone else's copies are deleted first.
async function pagesOf(user) {
  let pages = await caches.open(PAGES);
  const owner = await pages.match(OWNER);
  if (!owner || (await owner.text()) !== user) {
    await caches.delete(PAGES);
    pages = await caches.open(PAGES);
    await pages.put(OWNER, new Response(user));
  }
  return pages;
}

async function prune(pages) {
  const kept = [];
  for (const request of await pages.keys()) {
    if (new URL(request.url).pathname === OWNER) continue;
    const response = await pages.match(request, { ignoreVary: true });
    const at = Number((response && response.headers.get("X-Pin311-Stored-At")) || 0);
    if (Date.now() - at > PAGE_DAYS * 86400e3) await pages.delete(request);
    else kept.push({ request, at });
  }
  kept.sort((a, b) => b.at - a.at);
  for (const { request } of kept.slice(2 * PAGES_KEPT)) await pages.delete(request);   // a page and its state
}

let writing = Promise.resolve();
function serially(task) {        // one write at a time: an owner check and its writes are not interleaved
  writing = writing.then(task, task).catch(() => {});
  return writing;
}

// A page never opened on this phone with a connection: say so, keep nothing, run nothing.
function missing(url) {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>No connection · pin311</title>
<link rel="stylesheet" href="/static/css/pin311.css"><link rel="stylesheet" href="/static/css/crew.css"></head>
<body class="crew"><main id="main" class="crew-page">
<p class="alert queued" id="offline-missing">No connection, and this phone has no copy of this page:
it was not opened here with a connection (or it was more than ${PAGE_DAYS} days ago, or someone signed out since).</p>
<p><a href="/crew/">← Near me</a> — the last list this phone saw, and your actions waiting to be sent.</p>
</main></body></html>`;
  return new Response(html, { status: 503, headers: {
    "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'",
  } });
}

// --- a ticket's last known state (what the page shows after each action's answer) --------------------

async function state(event, url) {
  const key = url.origin + url.pathname;
  try {
    const response = await fetch(event.request);
    const copy = response.clone();
    event.waitUntil(serially(async () => {
      if (signedOut(copy)) return caches.delete(PAGES);
      if (copy.status !== 200 || !(copy.headers.get("Content-Type") || "").includes("json")) return;
      if (!(await caches.match(OWNER, { cacheName: PAGES }))) return;     // kept only beside that person's pages
      const pages = await caches.open(PAGES);
      await pages.put(key, new Response(await copy.blob(), { status: 200, headers: keptHeaders(copy) }));
    }));
    return response;
  } catch {
    return (await fresh(key)) || Response.error();
  }
}

// --- the app's code and styles ----------------------------------------------------------------------

async function shellFile(event) {
  const shell = await caches.open(SHELL);
  try {
    const response = await fetch(event.request);
    if (response.status === 200) event.waitUntil(shell.put(event.request, response.clone()));
    return response;
  } catch {
    return (await shell.match(event.request, { ignoreSearch: true, ignoreVary: true })) || Response.error();
  }
}
