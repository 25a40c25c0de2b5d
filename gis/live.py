"""What changed in the requests since the last look: the feed of the agents' live consoles.

Why asking and not LISTEN/NOTIFY: a transaction that calls pg_notify holds PostgreSQL's database-wide
notify lock until its commit is on disk, so with a notify trigger every request write in the city waited
for the previous one's WAL flush (migration 0016 has the figures). A look once a second per server
process is one indexed query, and costs the writers nothing.

A look returns the requests whose `updated_at` is at most WINDOW older than the previous look, minus
those already reported. (A writer stamps `updated_at` at its transaction's start and becomes visible only
at its commit, so a change can show up "in the past"; the window covers commits up to WINDOW late.)
A change this cannot show — a bulk load of old requests, a delete, a transaction longer than WINDOW, a
change to the catalogue — still moves the data version (gis.public.data_version), read in the same
snapshot: when it moved by more than the transactions just reported, the feed adds a "resync" and the
consoles reload what they show.
"""
import datetime as dt

from sqlalchemy import text

from gis.public import VERSION_SQL

WINDOW = dt.timedelta(seconds=10)
LIMIT = 500        # changes reported per look; more (a sweep updating thousands) → resync

_LOOK = text(f"""
SELECT v.now, v.version, r.id, r.public_id, r.service_code, r.status, r.updated_at,
       r.updated_at = r.requested_at AS created, r.xmin::text AS xid
  FROM (SELECT statement_timestamp() AS now, {VERSION_SQL} AS version) v
  LEFT JOIN LATERAL (SELECT id, public_id, service_code, status, updated_at, requested_at, xmin
                       FROM service_requests
                      WHERE updated_at > coalesce(CAST(:since AS timestamptz), statement_timestamp() - :window)
                      ORDER BY updated_at, id LIMIT :limit) r ON true""")


class ChangeFeed:
    """One server process's view of what changed; `look` is called by one thread at a time."""

    def __init__(self):
        self.since = None          # the database's time at the previous look
        self.version = None        # the data version at the previous look
        self._seen = {}            # (id, updated_at) reported within the window -> updated_at

    def look(self, conn):
        """The changes since the previous look, as messages {id, public_id, service_code, status, op}
        (op INSERT or UPDATE), possibly ending with {"op": "resync"}. The first look only takes its place."""
        first = self.since is None
        since = None if first else self.since - WINDOW
        rows = conn.execute(_LOOK, {"since": since, "window": WINDOW, "limit": LIMIT, "source": "requests"}).all()
        now, version = rows[0].now, rows[0].version
        messages, transactions = [], set()
        for r in rows:
            if r.id is None or (r.id, r.updated_at) in self._seen:
                continue
            self._seen[(r.id, r.updated_at)] = r.updated_at
            if first:              # what is in the window at the start is what the console loaded
                continue
            transactions.add(r.xid)
            messages.append({"id": r.id, "public_id": r.public_id, "service_code": r.service_code,
                             "status": r.status, "op": "INSERT" if r.created else "UPDATE"})
        if not first and (len(rows) == LIMIT or version - self.version > len(transactions)):
            messages.append({"op": "resync"})
        self.since, self.version = now, version
        horizon = now - WINDOW - WINDOW
        self._seen = {key: at for key, at in self._seen.items() if at >= horizon}
        return messages
