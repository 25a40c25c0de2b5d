"""Keeps the hosted requests layer current from the outbox (topic "publish", payload {request_id, event_id}).

`handle(conn, rows)` publishes the requests a batch of outbox rows names: it reads them from THE
public view and upserts them keyed on public_id (a request that left the view is deleted). It raises
when the portal fails; the rows then stay pending. `run_once` is the loop body: it claims due rows
(FOR UPDATE SKIP LOCKED, under an advisory lock so one process writes the layer at a time), calls
`handle`, and either marks them done or backs off (attempts, next_try, last_error) — so an outage of
any length loses nothing and the backlog drains when the portal answers again. `now` can be given to
fast-forward the retry clock. Every failure drops the cached sign-in: the next try builds a new GIS,
which is the only way back after a token expiry (the package goes anonymous after "Invalid token").
"""
import logging
import os

from sqlalchemy import text

from gis import arcgis_connect, arcgis_features as feats
from gis.arcgis_publish import LOCK

TOPIC = "publish"
BACKOFF_FIRST, BACKOFF_MAX = 15, 600      # seconds: 15, 30, 60, … capped at 10 minutes
log = logging.getLogger(__name__)

_CLAIM = text("""
SELECT id, payload, attempts FROM outbox
 WHERE topic = :topic AND done_at IS NULL AND next_try <= coalesce(:now, now())
 ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED""")
_DONE = text("UPDATE outbox SET done_at = coalesce(:now, now()), last_error = NULL WHERE id = ANY(:ids)")
_BACKOFF = text("""
UPDATE outbox SET attempts = attempts + 1, last_error = :error,
       next_try = coalesce(:now, now()) + make_interval(secs => least(:first * power(2, attempts), :max))
 WHERE id = ANY(:ids)""")
_LAYER = text("SELECT url FROM arcgis_items WHERE portal_url = :portal AND key = 'requests'")


def batch_size():
    return max(1, int(os.environ.get("PIN311_ARCGIS_BATCH", feats.BATCH)))


def forget_session():
    arcgis_connect.forget_session()


def handle(conn, rows):
    """Publish the requests named by outbox rows (objects with .payload); raises if the portal fails."""
    if not os.environ.get("PIN311_ARCGIS_URL", "").strip():
        return    # ArcGIS is not configured here: nothing to keep current
    portal = arcgis_connect.settings()["url"]   # a half-done setting is an error: the rows wait for it
    url = conn.execute(_LAYER, {"portal": portal}).scalar()
    if url is None:
        return    # not published yet: `pin311 arcgis publish` loads everything when it runs
    from arcgis.features import FeatureLayer
    # one writer of the layer at a time, whoever calls (our run_once, the outbox worker, a publish):
    # two writers could both add a request they each found missing
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK})
    ids = sorted({int(r.payload["request_id"]) for r in rows if (r.payload or {}).get("request_id")})
    public_ids = dict(conn.execute(feats.PUBLIC_IDS, {"ids": ids}).all())
    shown = conn.execute(feats.PUBLIC_SOME, {"ids": ids}).all()
    districts = feats.district_layers(conn)
    features = [feats.request_feature(r, districts) for r in shown]
    gone = [public_ids[i] for i in ids if i in public_ids and i not in {r.objectid for r in shown}]
    for attempt in (1, 2):
        try:
            layer = FeatureLayer(url, arcgis_connect.session())
            return feats.upsert(layer, features, "public_id", gone=gone, batch=batch_size())
        except Exception as exc:
            forget_session()
            if attempt == 2 or not _token_refused(exc):
                raise
            log.info("arcgis sync: token refused, signing in again")


def _token_refused(exc):
    """An expired or revoked token: the package has gone anonymous, so sign in again at once."""
    words = str(exc).lower()
    return any(w in words for w in ("invalid token", "token required", "error code: 498", "error code: 499"))


def run_once(engine, now=None, limit=None):
    """Send one batch of due outbox rows. Returns {"sent": n} or {"sent": 0, "error": text, "rows": n}."""
    limit = limit or batch_size()
    with engine.begin() as conn:
        if not conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK}).scalar():
            return {"sent": 0, "busy": True}
        rows = conn.execute(_CLAIM, {"topic": TOPIC, "now": now, "limit": limit}).all()
        if not rows:
            return {"sent": 0}
        ids = [r.id for r in rows]
        try:
            handle(conn, rows)
        except Exception as exc:   # the portal failed (or refused): keep the rows, try again later
            error = f"{type(exc).__name__}: {str(exc).strip()[:480]}"
            log.warning("arcgis sync: %d rows deferred: %s", len(ids), error)
            conn.execute(_BACKOFF, {"ids": ids, "now": now, "error": error,
                                    "first": BACKOFF_FIRST, "max": BACKOFF_MAX})
            return {"sent": 0, "error": error, "rows": len(ids)}
        conn.execute(_DONE, {"ids": ids, "now": now})
        return {"sent": len(ids)}


def drain(engine, now=None, max_batches=10_000):
    """Run batches until nothing is due (or a batch fails). Returns the number of rows sent."""
    sent = 0
    for _ in range(max_batches):
        result = run_once(engine, now=now)
        sent += result["sent"]
        if not result["sent"]:
            break
    return sent


_STATUS = text("""
SELECT count(*) FILTER (WHERE done_at IS NULL) AS backlog,
       count(*) FILTER (WHERE done_at IS NULL AND attempts > 0) AS failing,
       min(created_at) FILTER (WHERE done_at IS NULL) AS oldest_pending,
       max(done_at) AS last_sent,
       extract(epoch FROM now() - min(created_at) FILTER (WHERE done_at IS NULL)) AS lag_seconds,
       min(next_try) FILTER (WHERE done_at IS NULL) AS next_try,
       (SELECT last_error FROM outbox WHERE topic = :topic AND done_at IS NULL AND last_error IS NOT NULL
         ORDER BY id DESC LIMIT 1) AS last_error
  FROM outbox WHERE topic = :topic""")


def status(conn):
    """Backlog, lag (age of the oldest unsent change), last send, next retry, last error, items."""
    out = dict(conn.execute(_STATUS, {"topic": TOPIC}).one()._mapping)
    out["lag_seconds"] = float(out["lag_seconds"] or 0)
    out["items"] = [dict(r._mapping) for r in conn.execute(text(
        "SELECT portal_url, key, item_id, url, title, published_at FROM arcgis_items "
        "ORDER BY portal_url, key"))]
    return out
