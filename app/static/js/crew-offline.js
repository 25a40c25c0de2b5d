// Crew pages without a connection: registers the crew pages' service worker (crew-sw.js, served at
// /crew/sw.js so that its scope is /crew/), and says plainly when the page is not live — either an
// offline copy the worker kept (it marks each copy with <meta name="pin311-offline-copy">) or a live
// page that has since lost its connection.
export const OFFLINE_COPY = (() => {
  const meta = document.querySelector('meta[name="pin311-offline-copy"]');
  const at = meta ? Date.parse(meta.content) : NaN;
  return Number.isNaN(at) ? null : at;
})();

if ("serviceWorker" in navigator) {
  // Without it the pages need a connection to open, as before; nothing else depends on it.
  navigator.serviceWorker.register("/crew/sw.js", { scope: "/crew/" }).catch(() => {});
}

function when(ms) {
  const d = new Date(ms);
  const today = d.toDateString() === new Date().toDateString();
  return today ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
               : d.toLocaleString([], { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

function showBanner() {
  const banner = document.getElementById("offline-banner");
  if (!banner) return;
  const text = banner.querySelector(".offline-text");
  const reload = banner.querySelector("button");
  const online = navigator.onLine;
  banner.hidden = online && !OFFLINE_COPY;
  reload.hidden = !(online && OFFLINE_COPY);
  banner.dataset.state = OFFLINE_COPY ? (online ? "copy-online" : "copy") : "offline";
  if (OFFLINE_COPY && !online) {
    text.textContent = `Offline: this page as this phone saw it at ${when(OFFLINE_COPY)} — it may have changed since. ` +
                       "What you do is saved on this phone and sent when the connection is back.";
  } else if (OFFLINE_COPY) {
    text.textContent = `The connection is back; this page is still the copy from ${when(OFFLINE_COPY)}.`;
  } else {
    text.textContent = "No connection: what you do is saved on this phone and sent when the connection is back.";
  }
}

const reloadButton = document.querySelector("#offline-banner button");
if (reloadButton) reloadButton.addEventListener("click", () => location.reload());
window.addEventListener("online", showBanner);
window.addEventListener("offline", showBanner);
showBanner();
