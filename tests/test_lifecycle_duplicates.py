"""A request closed as a duplicate of another: its callers are told where it went, once; reopened, it is
its own request again (no 'duplicate of', its callers no longer follow the other one)."""
import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from gis import crew, intake, lifecycle
from gis.errors import Conflict
from tests.notify_fixtures import _drain, _mail_texts, _texts, outside_world  # noqa: F401

SOUTH_BOSTON = (42.3345, -71.0398)


def _dog(conn, **contact):
    return intake.submit_request(conn, intake.NewRequest(
        service_code="animal-generic", lat=SOUTH_BOSTON[0], lon=SOUTH_BOSTON[1], attributes={"animal_type": "dog"},
        contact=contact, channel="agent", actor="agent:test"))


def _boss():
    return SimpleNamespace(role="supervisor", username="test-supervisor", crew_ids=())


def _phones(conn, request_id):
    rows = conn.execute(text("SELECT phone, notify FROM contacts WHERE request_id = :r ORDER BY id"),
                        {"r": request_id}).all()
    conn.commit()
    return [tuple(r) for r in rows]


def test_the_duplicates_callers_hear_once_where_it_went_and_then_the_originals_news(
        conn, engine, outside_world):  # noqa: F811
    _, mailbox = outside_world
    original = _dog(conn, phone="+16175550401")
    copy = _dog(conn, phone="+16175550402", email="second@example.org")
    _drain(engine)                                          # both 'received' messages
    key = uuid.uuid4().hex
    crew.mark_duplicate(conn, _boss(), copy["public_id"], original["public_id"], key=key)
    assert crew.mark_duplicate(conn, _boss(), copy["public_id"], original["public_id"], key=key)["repeated"]
    with pytest.raises(Conflict):                           # marked again by hand: refused, nothing queued
        lifecycle.mark_duplicate(conn, copy["id"], original["id"], "supervisor:test")
    _drain(engine)
    _drain(engine)                                          # a second pass of the worker sends nothing again
    merged = _texts("+16175550402", "merged")
    assert len(merged) == 1, _texts("+16175550402")
    assert merged[0] == (f"Boston 311: your request {copy['public_id']} (Animal Generic Request) was merged with "
                         f"request {original['public_id']}, which reports the same problem and is already being "
                         f"handled. We will tell you when it changes. Reply STATUS {original['public_id']} any "
                         f"time; STOP to stop texts.")
    assert _mail_texts(mailbox, "second@example.org")[1:] == [merged[0].split(" Reply STATUS")[0]]   # no STOP
    assert not _texts("+16175550401", "merged")             # the original's own caller is not told of it
    # from now on the duplicate's caller hears the original's news, once per change
    lifecycle.apply(conn, original["id"], "close", "crew:test", reason="fixed", public_note="Dog returned home.")
    _drain(engine)
    _drain(engine)
    assert len(_texts("+16175550402", f"{original['public_id']} (Animal Generic Request) is closed: fixed")) == 1
    assert len(_texts("+16175550401", "is closed: fixed")) == 1


def test_the_supervisors_note_is_in_the_text_and_the_email_links_the_original(
        conn, engine, outside_world, monkeypatch):  # noqa: F811
    _, mailbox = outside_world
    monkeypatch.setenv("PIN311_PUBLIC_URL", "https://311.example.org/")
    original, copy = _dog(conn), _dog(conn, phone="+16175550403", email="third@example.org")
    lifecycle.mark_duplicate(conn, copy["public_id"], original["public_id"], "supervisor:test",
                             note="The crew is already on its way to this dog.")
    _drain(engine)
    merged, = _texts("+16175550403", "merged")
    assert merged.count("The crew is already on its way to this dog.") == 1
    mail = _mail_texts(mailbox, "third@example.org")[-1]
    assert mail.endswith(f"this dog. Its status: https://311.example.org/requests/{original['public_id']}"), mail
    # without a supervisor's note the public history says it; the text does not repeat it
    other = _dog(conn, phone="+16175550404")
    lifecycle.mark_duplicate(conn, other["public_id"], original["public_id"], "supervisor:test")
    _drain(engine)
    merged, = _texts("+16175550404", "merged")
    assert "Closed as a duplicate" not in merged
    notes = [e["note"] for e in lifecycle.history(conn, other["id"]) if e["kind"] == "closed"]
    assert notes == [f"Closed as a duplicate: we are following it on request {original['public_id']}."]


def test_a_caller_already_on_the_original_is_not_copied_twice(conn):
    original = _dog(conn, phone="+16175550405")
    copy = _dog(conn, phone="+16175550405")
    lifecycle.mark_duplicate(conn, copy["id"], original["id"], "supervisor:test")
    assert _phones(conn, original["id"]) == [("+16175550405", True)]


def test_a_closed_original_is_refused_and_nothing_changes(conn):
    original, copy = _dog(conn), _dog(conn, phone="+16175550406")
    lifecycle.apply(conn, original["id"], "close", "crew:test", reason="fixed")
    with pytest.raises(Conflict) as refused:
        lifecycle.mark_duplicate(conn, copy["id"], original["id"], "supervisor:test")
    assert "reopen it first" in refused.value.message and refused.value.field == "duplicate_of"
    row = conn.execute(text("SELECT status, duplicate_of FROM service_requests WHERE id = :i"), {"i": copy["id"]}).one()
    conn.commit()
    assert tuple(row) == ("open", None) and _phones(conn, original["id"]) == []


def test_reopening_a_duplicate_makes_it_its_own_request_again(
        conn, engine, client, outside_world):  # noqa: F811
    original = _dog(conn, phone="+16175550407")
    copy = _dog(conn, phone="+16175550408")
    lifecycle.mark_duplicate(conn, copy["id"], original["id"], "supervisor:test")
    _drain(engine)
    assert len(_texts("+16175550408", "merged")) == 1
    assert client.get(f"/open311/v2/requests/{copy['public_id']}.json").get_json()[0]["extended_attributes"][
        "duplicate_of"] == original["public_id"]
    done = crew.act(conn, _boss(), copy["public_id"], "reopen", key=uuid.uuid4().hex, reason="Another dog")
    assert done["status"] == "open" and done["duplicate_of"] is None
    row = conn.execute(text("SELECT closure_reason, closed_at, duplicate_of FROM service_requests WHERE id = :i"),
                       {"i": copy["id"]}).one()
    conn.commit()
    assert tuple(row) == (None, None, None)
    extended = client.get(f"/open311/v2/requests/{copy['public_id']}.json").get_json()[0]["extended_attributes"]
    assert extended["duplicate_of"] is None and extended["closure_reason"] is None
    assert crew.ticket_detail(conn, _boss(), copy["public_id"])["duplicate_of_public_id"] is None
    # its caller hears about their own request again, no longer about the other one
    assert _phones(conn, original["id"]) == [("+16175550407", True), ("+16175550408", False)]
    _drain(engine)
    lifecycle.apply(conn, original["id"], "close", "crew:test", reason="fixed")
    _drain(engine)
    assert not _texts("+16175550408", "closed")
    assert len(_texts("+16175550408", "reopened")) == 1 and len(_texts("+16175550407", "is closed: fixed")) == 1
    # marked a duplicate once more, its caller follows the original once more
    lifecycle.apply(conn, original["id"], "reopen", "supervisor:test")
    lifecycle.mark_duplicate(conn, copy["id"], original["id"], "supervisor:test")
    assert _phones(conn, original["id"])[-1] == ("+16175550408", True)


def test_a_duplicate_reopened_before_the_worker_came_round_is_not_called_merged(
        conn, engine, outside_world):  # noqa: F811
    original, copy = _dog(conn), _dog(conn, phone="+16175550409")
    lifecycle.mark_duplicate(conn, copy["id"], original["id"], "supervisor:test")
    lifecycle.apply(conn, copy["id"], "reopen", "supervisor:test")
    _drain(engine)
    assert [("merged" in t, "reopened" in t) for t in _texts("+16175550409")[1:]] == [(False, True)]
