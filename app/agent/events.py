"""Live ticket events for the console: ONE PostgreSQL LISTEN per server process, fanned out to clients.

The trigger of migration 0001 announces every new or changed request on channel `pin311_requests`.
A small daemon thread holds the only listening connection and copies each notification into a
queue per connected console (server-sent events), so a hundred open consoles cost one database
connection and no polling. The thread starts with the first subscriber, reconnects with back-off
when the database goes away (clients are told to resync), and stops after a while without clients.
"""
import json
import logging
import queue
import select
import threading
import time

log = logging.getLogger(__name__)

CHANNEL = "pin311_requests"
QUEUE_SIZE = 500
IDLE_STOP_SECONDS = 30
POLL_SECONDS = 2.0


class EventHub:
    def __init__(self, engine):
        self.engine = engine
        self._lock = threading.Lock()
        self._subscribers = set()
        self._thread = None
        self.listening = threading.Event()

    # --- clients -------------------------------------------------------------------------------
    def subscribe(self, limit=None):
        """A queue of this process's events; None when `limit` subscribers are connected already."""
        q = queue.Queue(maxsize=QUEUE_SIZE)
        with self._lock:
            if limit is not None and len(self._subscribers) >= limit:
                return None
            self._subscribers.add(q)
            if self._thread is None or not self._thread.is_alive():
                self.listening.clear()
                self._thread = threading.Thread(target=self._run, name="pin311-listen", daemon=True)
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

    # --- the one listener ------------------------------------------------------------------------
    def _run(self):
        backoff, idle_since = 1.0, None
        while True:
            pg = None
            try:
                raw = self.engine.raw_connection()
                pg = raw.driver_connection
                raw.detach()  # ours for as long as we listen; not the request pool's
                pg.autocommit = True
                with pg.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")
                if backoff > 1.0:   # we were away: events may have been missed
                    self.publish({"op": "resync"})
                backoff = 1.0
                self.listening.set()
                while True:
                    if self.subscriber_count() == 0:
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since > IDLE_STOP_SECONDS and self._stop_if_idle():
                            return
                    else:
                        idle_since = None
                    if select.select([pg], [], [], POLL_SECONDS)[0]:
                        pg.poll()
                        while pg.notifies:
                            self.publish(_parse(pg.notifies.pop(0).payload))
            except Exception as exc:  # noqa: BLE001 - the listener must outlive a database restart
                self.listening.clear()
                log.warning("live events: listener lost (%s); retrying in %.0fs", exc, backoff)
                if self.subscriber_count() == 0 and self._stop_if_idle():
                    return
                time.sleep(backoff)
                backoff = min(backoff * 2, 15.0)
            finally:
                if pg is not None:
                    try:
                        pg.close()
                    except Exception:  # noqa: BLE001
                        pass

    def _stop_if_idle(self):
        with self._lock:
            if self._subscribers:
                return False
            self._thread = None
            self.listening.clear()
            return True


def _parse(payload):
    try:
        message = json.loads(payload)
    except ValueError:
        return {"op": "resync"}
    return message if isinstance(message, dict) else {"op": "resync"}


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
    """Server-sent events for one subscribed client: `ready` once listening, then `request` per notification,
    for `lifetime_seconds`; then the stream ends and the browser's EventSource reconnects by itself."""
    ends = time.monotonic() + lifetime_seconds
    try:
        yield "retry: 3000\n\n"
        if hub.listening.wait(5):
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
