"""What the database keeps only for a while: run by `pin311 worker` about once an hour.

- Ended staff sessions (signed out, revoked, or unused past every limit) stay SESSION_DAYS as the record
  of who was signed in from where — an incident is usually looked into within weeks — then go.
- Outbox rows done more than OUTBOX_DAYS ago: delivered, their proof is in `notifications` and the
  request's events; left alone the table (scanned by every worker poll's index) only grows.
Nothing that is still live or still due is touched.
"""
from sqlalchemy import text

SESSION_DAYS = 90
OUTBOX_DAYS = 30

_SESSIONS = text("""WITH gone AS (
    DELETE FROM staff_sessions
     WHERE greatest(coalesce(revoked_at, last_seen_at), last_seen_at) < now() - make_interval(days => :days)
    RETURNING 1) SELECT count(*) FROM gone""")
_OUTBOX = text("""WITH gone AS (
    DELETE FROM outbox WHERE done_at < now() - make_interval(days => :days) RETURNING 1)
    SELECT count(*) FROM gone""")


def prune(conn, session_days=SESSION_DAYS, outbox_days=OUTBOX_DAYS):
    """Delete what has been kept long enough; returns {"sessions": n, "outbox": n}. The caller commits."""
    return {"sessions": conn.execute(_SESSIONS, {"days": session_days}).scalar_one(),
            "outbox": conn.execute(_OUTBOX, {"days": outbox_days}).scalar_one()}
