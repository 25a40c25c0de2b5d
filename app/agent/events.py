"""Live ticket events for the console: ONE watcher per server process, fanned out to clients.

A small daemon thread asks the database once a second what changed (gis.live.ChangeFeed: one indexed
query) and copies each change into a queue per connected console (server-sent events), so a hundred
open consoles cost one query a second. The thread starts with the first subscriber, keeps its place
across a database restart (the feed's window covers the gap; what it cannot cover makes it say
"resync"), and stops after a while without clients. Why not LISTEN/NOTIFY: see gis/live.py.
"""
import json
import logging
import queue
import threading
import time

from gis.live import ChangeFeed

log = logging.getLogger(__name__)

QUEUE_SIZE = 500
IDLE_STOP_SECONDS = 30
POLL_SECONDS = 1.0


class EventHub:
    def __init__(self, engine):
        self.engine = engine
        self._lock = threading.Lock()
        self._subscribers = set()
        self._thread = None
        self.watching = threading.Event()

    # --- clients -------------------------------------------------------------------------------
    def subscribe(self, limit=None):
        """A queue of this process's events; None when `limit` subscribers are connected already."""
        q = queue.Queue(maxsize=QUEUE_SIZE)
        with self._lock:
            if limit is not None and len(self._subscribers) >= limit:
                return None
            self._subscribers.add(q)
            if self._thread is None or not self._thread.is_alive():
                self.watching.clear()
                self._thread = threading.Thread(target=self._run, name="pin311-live", daemon=True)
                self._thread.start()
        return q

    def unsubscribe(self, q):
        with self._lock:
            self._subscribers.discard(q)

    def subscriber_count(self):
        with self._lock:
            return len(self._subscribers)

    def publish(self, message):
        """Hand one message to every client; a client too slow to keep up is told to resync instead."""
        with self._lock:
            targets = list(self._subscribers)
        for q in targets:
            try:
                q.put_nowait(message)
            except queue.Full:
                _drain(q)
                q.put_nowait({"op": "resync"})

    # --- the one watcher -------------------------------------------------------------------------
    def _run(self):
        feed, backoff, idle_since = None, 1.0, None
        while True:
            if self.subscriber_count() == 0:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > IDLE_STOP_SECONDS and self._stop_if_idle():
                    return
                # nobody to tell: no queries; the next console starts from a fresh look
                feed = None
                self.watching.clear()
                time.sleep(POLL_SECONDS)
                continue
            idle_since = None
            feed = feed or ChangeFeed()
            try:
                with self.engine.connect() as conn:
                    for message in feed.look(conn):
                        self.publish(message)
                self.watching.set()
                backoff = 1.0
                time.sleep(POLL_SECONDS)
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive a database restart
                log.warning("live events: cannot read changes (%s); retrying in %.0fs", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 15.0)

    def _stop_if_idle(self):
        with self._lock:
            if self._subscribers:
                return False
            self._thread = None
            self.watching.clear()
            return True


def _drain(q):
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass


def hub_for(app):
    """The process's hub for this app (created on first use)."""
    hub = app.extensions.get("pin311.agent_events")
    if hub is None:
        hub = app.extensions.setdefault("pin311.agent_events", EventHub(app.extensions["pin311.engine"]))
    return hub


def sse_stream(hub, q, keepalive_seconds=15, lifetime_seconds=600):
    """Server-sent events for one subscribed client: `ready` once watching, then `request` per change,
    for `lifetime_seconds`; then the stream ends and the browser's EventSource reconnects by itself."""
    ends = time.monotonic() + lifetime_seconds
    try:
        yield "retry: 3000\n\n"
        if hub.watching.wait(5):
            yield "event: ready\ndata: {}\n\n"
        while time.monotonic() < ends:
            try:
                message = q.get(timeout=max(0.01, min(keepalive_seconds, ends - time.monotonic())))
            except queue.Empty:
                yield ": keep-alive\n\n"
                continue
            kind = "resync" if message.get("op") == "resync" else "request"
            yield f"event: {kind}\ndata: {json.dumps(message)}\n\n"
    finally:
        hub.unsubscribe(q)
