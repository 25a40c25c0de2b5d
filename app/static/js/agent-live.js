// New and changed tickets from every agent and channel, pushed by the server (SSE over one LISTEN).
import { el } from "./agent-api.js";

const FEED_MAX = 8;
const VERB = { INSERT: "new", UPDATE: "now" };

export function startLive({ names = {}, onRequest, onResync }) {
  const status = document.getElementById("live-status");
  const feed = document.getElementById("live-feed");
  const setStatus = (state, text) => { status.dataset.state = state; status.textContent = text; };
  let source;
  const connect = () => {
    source = new EventSource("/agent/events");
    source.addEventListener("ready", () => setStatus("live", "Live"));
    source.addEventListener("resync", () => { setStatus("live", "Live"); onResync(); });
    source.addEventListener("request", (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      feed.prepend(el("li", { "data-public-id": m.public_id },
        el("strong", {}, `#${m.public_id}`), ` ${names[m.service_code] || m.service_code} · ${VERB[m.op] || ""} ${String(m.status || "").replace("_", " ")}`,
        el("span", { class: "muted" }, ` · ${new Date().toLocaleTimeString()}`)));
      while (feed.children.length > FEED_MAX) feed.lastChild.remove();
      onRequest(m);
    });
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) { setStatus("down", "Live: reconnecting…"); return; }
      // Refused (the server's live streams are all taken: 503): the browser will not retry by itself.
      // Refresh the map now and then, and ask for a stream again in a while (jittered, so consoles spread).
      setStatus("down", "Live updates paused (server busy): the map refreshes each time it retries");
      onResync();
      setTimeout(connect, 20000 + Math.random() * 20000);
    });
  };
  connect();
  return { close: () => source.close() };
}
