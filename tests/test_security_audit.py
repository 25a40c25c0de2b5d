"""The contact audit trail: migration 0008 up/down, gis/audit.py, and the pages that show contacts."""
import uuid

import pytest
from sqlalchemy import create_engine, pool, text

from app import schema
from gis import audit, intake
from gis.errors import InvalidInput
from tests.conftest import _admin_url, _exec_autocommit, login

POINT = (42.3505, -71.0620)


def _ticket(conn, phone, first_name="Ada"):
    t = intake.submit_request(conn, intake.NewRequest(
        service_code="pothole", lat=POINT[0], lon=POINT[1], description="audit test",
        contact={"first_name": first_name, "last_name": "Lovelace", "phone": phone}, channel="phone",
        actor="agent:test-agent", idempotency_key=str(uuid.uuid4())))
    conn.commit()
    return t


def _phone():
    return "617555" + str(uuid.uuid4().int)[:4]


def test_record_view_and_change_without_values(engine):
    with engine.connect() as c:
        phone = _phone()
        t = _ticket(c, phone)
        n = audit.viewed(c, "agent:test-agent", request_ids=[t["id"]], fields=("name", "phone"),
                         context="test", ip="127.0.0.1")
        cid = c.scalar(text("SELECT id FROM contacts WHERE request_id = :r"), {"r": t["id"]})
        audit.changed(c, "supervisor:test-supervisor", contact_ids=[cid], fields=("email",))
        c.commit()
        rows = audit.trail(c, request_id=t["id"])
        assert n == 1
        assert [(r["action"], r["actor"], r["contact_id"]) for r in rows] == [
            ("update", "supervisor:test-supervisor", cid), ("view", "agent:test-agent", cid)]
        assert rows[1]["fields"] == ["name", "phone"] and rows[1]["ip"] == "127.0.0.1"
        stored = c.execute(text("SELECT row_to_json(a)::text FROM contact_audit a WHERE request_id = :r"),
                           {"r": t["id"]}).scalars().all()
        assert stored and not any(phone in s or "Ada" in s or "Lovelace" in s for s in stored)


def test_a_request_without_contact_still_leaves_a_row(engine):
    with engine.connect() as c:
        t = intake.submit_request(c, intake.NewRequest(service_code="pothole", lat=POINT[0], lon=POINT[1],
                                                       idempotency_key=str(uuid.uuid4())))
        assert audit.viewed(c, "crew:test-crew", request_ids=[t["id"]]) == 1
        assert audit.trail(c, request_id=t["id"])[0]["contact_id"] is None
        c.rollback()


def test_bad_audit_calls_are_refused(engine):
    with engine.connect() as c:
        with pytest.raises(InvalidInput):
            audit.viewed(c, "", request_ids=[1])
        with pytest.raises(InvalidInput):
            audit.record(c, "agent:x", "peek", request_ids=[1])
        with pytest.raises(InvalidInput):
            audit.viewed(c, "agent:x", request_ids=[1], fields=("password",))
        assert audit.viewed(c, "agent:x", request_ids=[], ip="not-an-ip") == 0
        c.rollback()


def test_screen_pop_and_caller_lookup_are_audited(client, staff, engine):
    with engine.connect() as c:
        phone = _phone()
        t = _ticket(c, phone)
    login(client, staff["agent"])
    assert client.get(f"/agent/call?from=%2B1{phone}").status_code == 200
    assert client.get(f"/agent/callers?phone={phone}").status_code == 200
    with engine.connect() as c:
        rows = audit.trail(c, request_id=t["id"])
    assert [r["context"] for r in rows] == ["agent.caller_history", "agent.screen_pop"]
    assert {r["actor"] for r in rows} == {"agent:test-agent"}


def test_crew_ticket_view_is_audited(client, staff, engine):
    with engine.connect() as c:
        t = intake.submit_request(c, intake.NewRequest(
            service_code="animal-generic", lat=42.3345, lon=-71.0398, description="audit crew",
            attributes={"animal_type": "dog"},
            contact={"first_name": "Grace", "phone": _phone()}, idempotency_key=str(uuid.uuid4())))
        c.commit()
        crew_code = c.scalar(text("SELECT c.code FROM service_requests r JOIN crews c ON c.id = r.crew_id "
                                  "WHERE r.id = :i"), {"i": t["id"]})
    if crew_code != "animal-control-c6":
        pytest.skip(f"routing sent the test ticket to {crew_code}, not the test crew's")
    login(client, staff["crew"])
    r = client.get(f"/crew/tickets/{t['public_id']}")
    assert r.status_code == 200 and "Grace" in r.get_data(as_text=True)
    with engine.connect() as c:
        rows = audit.trail(c, request_id=t["id"])
    assert [(r["actor"], r["context"], r["fields"]) for r in rows] == [("crew:test-crew", "crew.ticket", ["name"])]


def test_migration_0008_up_and_down(db_url):
    from sqlalchemy.engine import make_url
    name = f"pin311_audit_mig_{uuid.uuid4().hex[:8]}"
    admin = _admin_url().render_as_string(hide_password=False)
    _exec_autocommit(admin, f'CREATE DATABASE "{name}"')
    url = make_url(db_url).set(database=name).render_as_string(hide_password=False)
    try:
        schema.upgrade(url)
        eng = create_engine(url, poolclass=pool.NullPool)
        with eng.connect() as c:
            assert c.scalar(text("SELECT to_regclass('contact_audit')")) == "contact_audit"
        schema.downgrade(url, "0008@-1")  # this branch only
        with eng.connect() as c:
            assert c.scalar(text("SELECT to_regclass('contact_audit')")) is None
        schema.upgrade(url)
        with eng.connect() as c:
            assert c.scalar(text("SELECT to_regclass('contact_audit')")) == "contact_audit"
        eng.dispose()
    finally:
        _exec_autocommit(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
