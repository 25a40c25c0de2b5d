"""The live consoles' change feed (gis/live.py) and the commit path it freed (migration 0016)."""
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from gis import intake
from gis.live import ChangeFeed
from tests.test_agent import SOUTH_BOSTON, _ticket


def _public_ids(messages):
    return [m["public_id"] for m in messages if m.get("op") != "resync"]


def test_each_new_or_changed_request_is_reported_once(conn):
    feed = ChangeFeed()
    assert feed.look(conn) == []                       # the first look only sets the place
    ticket = _ticket(conn)
    first = feed.look(conn)
    assert first == [{"id": ticket["id"], "public_id": ticket["public_id"], "service_code": "animal-generic",
                      "status": "open", "op": "INSERT"}]
    assert feed.look(conn) == []                       # not twice
    conn.execute(text("UPDATE service_requests SET status = 'acknowledged', updated_at = now() WHERE id = :id"),
                 {"id": ticket["id"]})
    conn.commit()
    changed = feed.look(conn)
    assert [(m["public_id"], m["status"], m["op"]) for m in changed] == [
        (ticket["public_id"], "acknowledged", "UPDATE")]


def test_a_change_committed_after_a_look_that_missed_it_is_still_reported(engine, conn):
    """A writer stamps updated_at when its transaction starts and is seen only once it commits: a look in
    between advances past its stamp. With no window the change would be lost."""
    ticket = _ticket(conn)
    feed = ChangeFeed()
    feed.look(conn)
    with engine.connect() as writer:
        writer.execute(text("UPDATE service_requests SET status = 'in_progress', updated_at = now() "
                            "WHERE id = :id"), {"id": ticket["id"]})
        assert feed.look(conn) == []                   # not committed yet: nothing to see
        writer.commit()                                # committed after the look, stamped before it
    assert _public_ids(feed.look(conn)) == [ticket["public_id"]]


def test_changes_the_feed_cannot_show_make_the_consoles_reload(conn):
    ticket = _ticket(conn)
    feed = ChangeFeed()
    feed.look(conn)
    conn.execute(text("DELETE FROM service_requests WHERE id = :id"), {"id": ticket["id"]})
    conn.commit()
    assert feed.look(conn) == [{"op": "resync"}]
    # an old request loaded as history (stamped long ago) is not in the window either
    conn.execute(text("""INSERT INTO service_requests (service_code, geom, channel, requested_at, updated_at)
                         VALUES ('animal-generic', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'import',
                                 now() - interval '3 years', now() - interval '3 years')"""),
                 {"lat": SOUTH_BOSTON[0], "lon": SOUTH_BOSTON[1]})
    conn.commit()
    assert feed.look(conn) == [{"op": "resync"}]
    assert feed.look(conn) == []


def test_request_writes_never_call_pg_notify(conn):
    """pg_notify in a writing transaction holds the database-wide notify lock until its commit is flushed:
    every request write would queue behind the previous one (migration 0016)."""
    sources = conn.execute(text("""
        SELECT p.proname, p.prosrc FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
         WHERE t.tgrelid IN ('service_requests'::regclass, 'request_events'::regclass, 'outbox'::regclass,
                             'contacts'::regclass) AND NOT t.tgisinternal""")).all()
    assert sources and not [name for name, src in sources if "pg_notify" in src.lower()]


def _slot_drawn_after(conn, seed):
    conn.execute(text("SELECT setseed(:s)"), {"s": seed})
    slot = conn.scalar(text("SELECT floor(random() * 64)::int"))
    conn.execute(text("SELECT setseed(:s)"), {"s": seed})   # the writer's next draw is that slot again
    return slot


def _hold_slot(conn, slot):
    conn.execute(text("INSERT INTO data_versions (name, slot, version) VALUES ('requests', :k, 1) "
                      "ON CONFLICT (name, slot) DO UPDATE SET version = data_versions.version + 1"), {"k": slot})


@pytest.mark.parametrize("same_slot", [False, True])
def test_a_writer_waits_for_another_only_when_both_draw_the_same_slot(engine, same_slot):
    """Two request writes in flight: the second commits while the first still holds its data-version slot
    (before 0016 there was one row per source, so it always waited). Drawing the same slot is the rare
    case that still waits, shown here so the test can tell the two apart."""
    with engine.connect() as first, engine.connect() as second:
        second.execute(text("SET lock_timeout = '300ms'"))
        drawn = _slot_drawn_after(second, 0.25)
        _hold_slot(first, drawn if same_slot else (drawn + 1) % 64)      # first's transaction stays open
        req = intake.NewRequest(service_code="animal-generic", lat=SOUTH_BOSTON[0], lon=SOUTH_BOSTON[1],
                                attributes={"animal_type": "dog"}, channel="agent", actor="agent:test")
        if same_slot:
            with pytest.raises(OperationalError, match="lock timeout"):
                intake.submit_request(second, req)
        else:
            assert intake.submit_request(second, req)["created"]
        first.rollback()
