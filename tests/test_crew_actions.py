"""Crew actions in the core (gis.crew, gis.lifecycle): only on one's own crew's tickets, events with the
position, idempotent replays (racing ones too), reassignment with a reason, a supervisor's reopen and duplicate."""
import re
import uuid

import pytest
from sqlalchemy import text

from gis import crew, lifecycle
from gis.errors import Conflict, Forbidden, InvalidInput
from gis.intake import NewRequest, submit_request
from tests.crew_fixtures import _dog, _exif_rotated_with_gps, _jpeg, _status, _user


def test_crew_member_cannot_act_on_another_crews_ticket(conn, tmp_path):
    other = submit_request(conn, NewRequest(service_code="animal-generic", lat=42.3601, lon=-71.0589,
                                            attributes={"animal_type": "cat"}, channel="agent"))
    assert other["crew"]["code"] != "animal-control-c6"
    user = _user(conn)
    with pytest.raises(Forbidden, match=rf"another crew \({re.escape(other['crew']['name'])}\)"):
        crew.act(conn, user, other["public_id"], "close", key=str(uuid.uuid4()), reason="fixed")
    assert _status(conn, other["id"]) == "open"
    boss = _user(conn, role="supervisor", crews=(), username="test-supervisor")
    done = crew.act(conn, boss, other["public_id"], "accept", key=str(uuid.uuid4()))
    assert done["status"] == "acknowledged"


def test_actions_are_events_with_position_and_idempotent(conn, tmp_path):
    ticket = _dog(conn)
    user = _user(conn)
    key = str(uuid.uuid4())
    crew.act(conn, user, ticket["public_id"], "accept", key=key, lat=42.3340, lon=-71.0400)
    again = crew.act(conn, user, ticket["public_id"], "accept", key=key)
    assert again["repeated"] is True
    pos = conn.execute(text("SELECT ST_Y(last_position), ST_X(last_position), "
                            "last_seen_at > now() - interval '1 min' "
                            "FROM crews WHERE code = 'animal-control-c6'")).one()
    assert pos == (pytest.approx(42.3340), pytest.approx(-71.0400), True)
    crew.act(conn, user, ticket["public_id"], "note", key=str(uuid.uuid4()), internal_note="Gate code 1234")
    close_key = str(uuid.uuid4())
    done = crew.act(conn, user, ticket["public_id"], "close", key=close_key, reason="fixed",
                    note="The dog was taken to the shelter.", photo=_jpeg(exif=_exif_rotated_with_gps()),
                    media_dir=tmp_path)
    assert done["status"] == "closed"
    assert crew.act(conn, user, ticket["public_id"], "close", key=close_key, reason="fixed")["repeated"]
    events = conn.execute(text("SELECT kind, actor, media, data FROM request_events WHERE request_id = :i "
                               "ORDER BY id"), {"i": ticket["id"]}).all()
    assert [e.kind for e in events] == ["created", "acknowledged", "note", "closed"]
    assert all(e.actor == "crew:test-crew" for e in events[1:])
    closed = events[-1]
    assert closed.media and (tmp_path / f"{closed.media}.jpg").exists()
    assert closed.data["photo"]["taken_at"]["lat"] == pytest.approx(42.3345, abs=1e-4)
    # the caller hears of the closure
    notify = text("SELECT count(*) FROM outbox WHERE topic = 'notify' AND payload ->> 'kind' = 'closed' "
                  "AND (payload ->> 'request_id')::bigint = :i")
    assert conn.execute(notify, {"i": ticket["id"]}).scalar() == 1
    # internal notes, photo location and actors stay out of the public history
    public = lifecycle.history(conn, ticket["id"], public=True)
    text_public = repr(public)
    assert "Gate code" not in text_public and "taken_at" not in text_public and "test-crew" not in text_public
    assert any(e["note"] == "The dog was taken to the shelter." for e in public)


def test_two_replays_racing_close_once(engine):
    """The same queued closure sent twice at once (two tabs, a retry): one closure, both answered."""
    import threading
    with engine.connect() as c:
        ticket = _dog(c)
        user = _user(c)
    key, results, errors = str(uuid.uuid4()), [], []
    barrier = threading.Barrier(2)

    def send():
        try:
            with engine.connect() as c:
                barrier.wait()
                results.append(crew.act(c, user, ticket["public_id"], "close", key=key, reason="fixed",
                                        note="Done"))
        except Exception as exc:   # noqa: BLE001 - collected for the assertion
            errors.append(exc)
    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sorted(r["repeated"] for r in results) == [False, True]
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM request_events "
                              "WHERE request_id = :i AND kind = 'closed'"),
                         {"i": ticket["id"]}).scalar() == 1


def test_reassign_needs_a_reason_then_hands_the_ticket_over(conn):
    ticket = _dog(conn)
    user = _user(conn)
    with pytest.raises(InvalidInput, match="why"):
        crew.act(conn, user, ticket["public_id"], "reassign", key=uuid.uuid4().hex,
                 crew_code="animal-control-a1")
    key = uuid.uuid4().hex
    moved = crew.act(conn, user, ticket["public_id"], "reassign", key=key, crew_code="animal-control-a1",
                     reason="Dog ran into A1's area")
    assert moved["crew"]["code"] == "animal-control-a1"
    event = conn.execute(text("SELECT internal_note, actor FROM request_events WHERE request_id = :i "
                              "AND kind = 'reassigned'"), {"i": ticket["id"]}).one()
    assert event == ("Reassigned: Dog ran into A1's area", "crew:test-crew")
    # the replay of the same action is answered even though the ticket is no longer this crew's …
    assert crew.act(conn, user, ticket["public_id"], "reassign", key=key, crew_code="animal-control-a1",
                    reason="Dog ran into A1's area")["repeated"] is True
    # … but a new action on it is not allowed any more
    with pytest.raises(Forbidden):
        crew.act(conn, user, ticket["public_id"], "close", key=uuid.uuid4().hex, reason="fixed")
    # a key cannot be borrowed for another ticket
    other = _dog(conn)
    with pytest.raises(Conflict):
        crew.act(conn, user, other["public_id"], "accept", key=key)


# --- supervisors: reopen ("not fixed") and duplicates ---------------------------------------------

def _boss(conn):
    return _user(conn, role="supervisor", crews=(), username="test-supervisor")


def test_a_supervisor_reopens_a_closed_ticket_and_its_callers_hear(conn):
    ticket = _dog(conn)
    crew.act(conn, _user(conn), ticket["public_id"], "close", key=uuid.uuid4().hex, reason="fixed")
    with pytest.raises(Forbidden):                       # a crew member cannot reopen
        crew.act(conn, _user(conn), ticket["public_id"], "reopen", key=uuid.uuid4().hex, reason="Still there")
    with pytest.raises(InvalidInput, match="why"):
        crew.act(conn, _boss(conn), ticket["public_id"], "reopen", key=uuid.uuid4().hex)
    key = uuid.uuid4().hex
    done = crew.act(conn, _boss(conn), ticket["public_id"], "reopen", key=key, reason="Caller says the dog is back",
                    note="We are sending the crew again.")
    assert done["status"] == "open" and done["repeated"] is False
    assert crew.act(conn, _boss(conn), ticket["public_id"], "reopen", key=key, reason="x")["repeated"] is True
    event = conn.execute(text("SELECT public_note, internal_note, actor FROM request_events WHERE request_id = :i "
                              "AND kind = 'reopened'"), {"i": ticket["id"]}).one()
    assert event == ("We are sending the crew again.", "Reopened: Caller says the dog is back",
                     "supervisor:test-supervisor")
    told = conn.execute(text("SELECT count(*) FROM outbox WHERE topic = 'notify' AND payload->>'kind' = 'reopened' "
                             "AND (payload->>'request_id')::bigint = :i"), {"i": ticket["id"]}).scalar()
    assert told == 1
    with pytest.raises(Conflict):                        # an open ticket cannot be reopened
        crew.act(conn, _boss(conn), ticket["public_id"], "reopen", key=uuid.uuid4().hex, reason="again")


def test_a_supervisor_closes_a_duplicate_naming_the_original(conn):
    original, copy = _dog(conn), _dog(conn, phone="+16175550143")
    with pytest.raises(Forbidden):
        crew.mark_duplicate(conn, _user(conn), copy["public_id"], original["public_id"], key=uuid.uuid4().hex)
    with pytest.raises(InvalidInput):
        crew.mark_duplicate(conn, _boss(conn), copy["public_id"], copy["public_id"], key=uuid.uuid4().hex)
    with pytest.raises(InvalidInput):
        crew.mark_duplicate(conn, _boss(conn), copy["public_id"], " # ", key=uuid.uuid4().hex)
    key = uuid.uuid4().hex
    done = crew.mark_duplicate(conn, _boss(conn), copy["public_id"], f"#{original['public_id']}", key=key)
    assert done["status"] == "closed" and done["repeated"] is False
    again = crew.mark_duplicate(conn, _boss(conn), copy["public_id"], original["public_id"], key=key)
    assert again["repeated"] is True                     # a replayed action, not an error
    row = conn.execute(text("SELECT closure_reason, duplicate_of FROM service_requests WHERE id = :i"),
                       {"i": copy["id"]}).one()
    assert row == ("duplicate", original["id"])
    phones = conn.execute(text("SELECT phone FROM contacts WHERE request_id = :i"), {"i": original["id"]}).scalars()
    assert "+16175550143" in set(phones)                 # the copy's caller now follows the original
    detail = crew.ticket_detail(conn, _boss(conn), copy["public_id"])
    assert detail["duplicate_of_public_id"] == original["public_id"]
