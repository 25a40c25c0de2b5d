"""Rate-limit counters in PostgreSQL: one count per key for every web worker and host.

Flask-Limiter keeps its counters in a `limits` storage. The in-memory one counts per process, so with
four workers a "120 per minute" Open311 key could post 480; Redis or memcached would be one more
server to run. The database is already shared, so the counters live there (migration 0012, an
UNLOGGED table: no WAL, no fsync per count; emptied after a crash, which only forgives some hits).

Fixed windows, as Flask-Limiter uses by default: the first hit opens a window of `expiry` seconds,
hits count up until it ends, and the next hit after that opens a new one — one statement each.
Registered with `limits` under the scheme `pin311://` (subclassing Storage registers it).
"""
import itertools
import time

from limits.storage import Storage
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gis.db import engine_for

_INCR = text("""
INSERT INTO rate_limits AS r (key, hits, expires_at)
VALUES (:key, :amount, now() + make_interval(secs => :expiry))
ON CONFLICT (key) DO UPDATE
   SET hits = CASE WHEN r.expires_at <= now() THEN excluded.hits ELSE r.hits + excluded.hits END,
       expires_at = CASE WHEN r.expires_at <= now() THEN excluded.expires_at ELSE r.expires_at END
RETURNING hits""")
_GET = text("SELECT hits FROM rate_limits WHERE key = :key AND expires_at > now()")
_EXPIRY = text("SELECT extract(epoch FROM expires_at) FROM rate_limits WHERE key = :key AND expires_at > now()")
_SWEEP = text("DELETE FROM rate_limits WHERE expires_at < now() - interval '1 hour'")
_SWEEP_EVERY = 1000          # hits between deletions of windows long over (keys never seen again)


class PostgresStorage(Storage):
    STORAGE_SCHEME = ["pin311"]

    def __init__(self, uri=None, wrap_exceptions=False, database_url=None, **options):
        if not database_url:
            raise ValueError("the pin311:// rate-limit storage needs database_url in its options")
        # Its own small pool (the check runs before the view opens the request's connection), in
        # autocommit: each statement is its own transaction, one round trip.
        self._engine = engine_for(database_url, 2000, 2).execution_options(isolation_level="AUTOCOMMIT")
        self._hits = itertools.count()
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self):
        return DBAPIError

    def _run(self, sql, **params):
        with self._engine.connect() as conn:
            result = conn.execute(sql, params)
            return result.scalar() if result.returns_rows else None

    def incr(self, key, expiry, amount=1):
        if next(self._hits) % _SWEEP_EVERY == 0:
            self._run(_SWEEP)
        return self._run(_INCR, key=key, amount=amount, expiry=float(expiry))

    def get(self, key):
        return self._run(_GET, key=key) or 0

    def get_expiry(self, key):
        at = self._run(_EXPIRY, key=key)
        return float(at) if at is not None else time.time()

    def check(self):
        try:
            return self._run(text("SELECT true")) is True
        except DBAPIError:
            return False

    def reset(self):
        return self._run(text("WITH gone AS (DELETE FROM rate_limits RETURNING 1) SELECT count(*) FROM gone"))

    def clear(self, key):
        self._run(text("DELETE FROM rate_limits WHERE key = :key"), key=key)
