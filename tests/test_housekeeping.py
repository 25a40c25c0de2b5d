"""What is kept only for a while goes after its time, and nothing live or due is touched."""
import os
import subprocess

from sqlalchemy import text

from gis import housekeeping


def _session(conn, user_id, token, revoked_days=None, seen_days=0):
    return conn.execute(text("""
        INSERT INTO staff_sessions (user_id, token_hash, created_at, last_seen_at, revoked_at)
        VALUES (:u, :h, now() - make_interval(days => :seen), now() - make_interval(days => :seen),
                CASE WHEN CAST(:revoked AS int) IS NOT NULL THEN now() - make_interval(days => :revoked) END)
        RETURNING id"""), {"u": user_id, "h": token, "seen": seen_days, "revoked": revoked_days}).scalar_one()


def _outbox(conn, done_days):
    return conn.execute(text("""
        INSERT INTO outbox (topic, payload, done_at)
        VALUES ('notify', '{}', CASE WHEN CAST(:d AS int) IS NOT NULL THEN now() - make_interval(days => :d) END)
        RETURNING id"""), {"d": done_days}).scalar_one()


def test_old_ended_sessions_and_old_done_outbox_rows_go_the_rest_stay(conn, staff):
    user_id = conn.scalar(text("SELECT id FROM users WHERE username = :u"), {"u": staff["agent"]})
    old_revoked = _session(conn, user_id, "hk-a", revoked_days=120, seen_days=121)
    old_unused = _session(conn, user_id, "hk-b", seen_days=100)
    recent_revoked = _session(conn, user_id, "hk-c", revoked_days=10, seen_days=11)
    live = _session(conn, user_id, "hk-d")
    done_long_ago, done_lately, due = _outbox(conn, 45), _outbox(conn, 2), _outbox(conn, None)
    conn.commit()
    gone = housekeeping.prune(conn)
    conn.commit()
    assert gone["sessions"] >= 2 and gone["outbox"] >= 1
    left = set(conn.scalars(text("SELECT id FROM staff_sessions WHERE token_hash LIKE 'hk-%'")))
    assert left == {recent_revoked, live} and not {old_revoked, old_unused} & left
    kept = set(conn.scalars(text("SELECT id FROM outbox WHERE id = ANY(:ids)"),
                            {"ids": [done_long_ago, done_lately, due]}))
    assert kept == {done_lately, due}
    conn.execute(text("DELETE FROM staff_sessions WHERE token_hash LIKE 'hk-%'"))
    conn.execute(text("DELETE FROM outbox WHERE id = ANY(:ids)"), {"ids": [done_lately, due]})
    conn.commit()


def test_the_worker_prunes_when_it_starts(conn, staff, db_url):
    from tests.test_platform import PIN311
    user_id = conn.scalar(text("SELECT id FROM users WHERE username = :u"), {"u": staff["agent"]})
    old = _session(conn, user_id, "hk-worker", revoked_days=200, seen_days=201)
    conn.commit()
    run = subprocess.run([PIN311, "worker", "--once"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DATABASE_URL": db_url})
    assert run.returncode == 0, run.stderr
    assert "old staff sessions" in run.stdout
    assert conn.scalar(text("SELECT count(*) FROM staff_sessions WHERE id = :i"), {"i": old}) == 0
