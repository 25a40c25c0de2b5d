"""The crew pages over HTTP: who may open them, near-me JSON and its filters, another crew's ticket read-only,
notes and names off public outputs, a supervisor without a crew, an action by someone else, overdue, the
ticket state, reopen and duplicate from the ticket page."""
import re
import uuid

import pytest
from sqlalchemy import text

from gis import crew
from gis.intake import NewRequest, submit_request
from tests.conftest import login
from tests.crew_fixtures import STRAY_DOG, _csrf, _dog, _status, _user


def test_crew_pages_need_a_crew_or_supervisor_role(client, staff):
    assert client.get("/crew/").status_code in (302, 401)
    login(client, staff["analyst"])
    assert client.get("/crew/").status_code == 403
    assert client.get("/crew/near.json?lat=42.33&lon=-71.04").status_code == 403


def test_near_json_and_ticket_page(client, staff, conn):
    ticket = submit_request(conn, NewRequest(
        service_code="animal-generic", lat=STRAY_DOG[0], lon=STRAY_DOG[1], attributes={"animal_type": "dog"},
        description="Stray dog by the park", address="by the bench near the gate",   # the caller's words
        contact={"first_name": "Ann", "last_name": "Caller", "phone": "+16175550142"},
        channel="agent", actor="agent:test"))
    crew.act(conn, _user(conn), ticket["public_id"], "note", key=str(uuid.uuid4()),
             internal_note="Dog is shy")
    login(client, staff["crew"])
    body = client.get(f"/crew/near.json?lat={STRAY_DOG[0]}&lon={STRAY_DOG[1]}").get_json()
    assert body["tickets"][0]["public_id"] == ticket["public_id"]
    bad = client.get("/crew/near.json?lat=abc&lon=-71", headers={"Accept": "application/json"})
    assert bad.status_code == 400 and bad.get_json()["field"] == "lat"
    page = client.get(f"/crew/tickets/{ticket['public_id']}").get_data(as_text=True)
    assert "Stray dog by the park" in page and "Dog is shy" in page and "Ann Caller" in page
    assert "615 E Fourth St" in page and "by the bench near the gate" in page
    assert "+16175550142" not in page and f"geo:{STRAY_DOG[0]:.6f},{STRAY_DOG[1]:.6f}" in page
    assert client.get("/crew/tickets/nope").status_code == 404


def test_near_json_filters(client, staff, conn):
    _dog(conn)
    login(client, staff["crew"])
    base = f"/crew/near.json?lat={STRAY_DOG[0]}&lon={STRAY_DOG[1]}&limit=30"
    overdue = client.get(base + "&scope=all&overdue=1").get_json()["tickets"]
    assert overdue and all(t["sla"] == "overdue" for t in overdue)
    dead = client.get(base + "&scope=all&service=dead-animal").get_json()["tickets"]
    assert all(t["service_code"] == "dead-animal" for t in dead)
    everyone = client.get(base + "&scope=all").get_json()["tickets"]
    assert len({t["crew"]["code"] for t in everyone if t["crew"]}) > 1
    assert client.get(base + "&scope=nobody", headers={"Accept": "application/json"}).status_code == 400


def test_other_crews_ticket_is_read_only_without_notes(client, staff, conn):
    other = submit_request(conn, NewRequest(service_code="animal-generic", lat=42.3601, lon=-71.0589,
                                            attributes={"animal_type": "cat"}, channel="agent",
                                            address="behind the blue fence",
                                            contact={"first_name": "Zed", "phone": "+16175550199"}))
    boss = _user(conn, role="supervisor", crews=(), username="test-supervisor")
    crew.act(conn, boss, other["public_id"], "note", key=str(uuid.uuid4()), internal_note="Secret gate code")
    login(client, staff["crew"])
    page = client.get(f"/crew/tickets/{other['public_id']}").get_data(as_text=True)
    assert "Secret gate code" not in page and "Zed" not in page and "close-form" not in page
    assert "behind the blue fence" not in page
    token = _csrf(client)
    r = client.post(f"/crew/tickets/{other['public_id']}/actions", headers={"X-CSRFToken": token,
                    "Accept": "application/json"},
                    data={"action": "close", "reason": "fixed", "key": "k-" + uuid.uuid4().hex})
    assert r.status_code == 403 and r.get_json()["error"]
    assert _status(conn, other["id"]) == "open"


def test_crew_notes_and_names_stay_off_public_outputs(client, conn, app):
    ticket = _dog(conn)
    user = _user(conn)
    crew.act(conn, user, ticket["public_id"], "note", key=uuid.uuid4().hex, internal_note="Gate code 4711")
    crew.act(conn, user, ticket["public_id"], "close", key=uuid.uuid4().hex, reason="fixed",
             note="The dog is safe at the shelter.", internal_note="Bitten, see incident 99")
    rules = {r.rule for r in app.url_map.iter_rules()}
    pages = [(rule, url) for rule, url in (
        ("/requests/<public_id>", f"/requests/{ticket['public_id']}"),
        ("/requests/<public_id>.json", f"/requests/{ticket['public_id']}.json"),
        ("/open311/v2/requests/<public_id>.<fmt>", f"/open311/v2/requests/{ticket['public_id']}.json"),
        ("/open311/v2/requests/<public_id>.<fmt>", f"/open311/v2/requests/{ticket['public_id']}.xml"),
    ) if rule in rules]
    if not pages:
        pytest.skip("no public request page in this app yet")
    for _, url in pages:
        body = client.get(url).get_data(as_text=True)
        for secret in ("Gate code 4711", "Bitten", "test-crew", "Ann Caller", "6175550142"):
            assert secret not in body, (url, secret)
    assert "The dog is safe at the shelter." in client.get(pages[0][1]).get_data(as_text=True)


def test_supervisor_without_a_crew_sees_all_crews_and_no_route_tab(client, staff, conn):
    ticket = _dog(conn)
    login(client, staff["supervisor"])
    page = client.get("/crew/").get_data(as_text=True)
    assert re.search(r'id="tab-route"[^>]*disabled', page)
    body = client.get(f"/crew/near.json?lat={STRAY_DOG[0]}&lon={STRAY_DOG[1]}").get_json()
    assert body["tickets"][0]["public_id"] == ticket["public_id"]
    assert len({t["crew"]["code"] for t in body["tickets"] if t["crew"]}) > 1     # every crew's work
    assert client.get(f"/crew/route.json?lat={STRAY_DOG[0]}&lon={STRAY_DOG[1]}").get_json()["stops"] == []


def test_an_action_taken_by_someone_else_is_refused_and_kept(client, staff, conn):
    """A page left open by one user while another signs in on the same browser: the action names who
    took it, and the server does not record it under the new user's name."""
    ticket = _dog(conn)
    login(client, staff["supervisor"])
    url = f"/crew/tickets/{ticket['public_id']}/actions"
    headers = {"X-CSRFToken": _csrf(client), "Accept": "application/json"}
    r = client.post(url, headers=headers, data={"action": "accept", "key": uuid.uuid4().hex, "user": staff["crew"]})
    assert r.status_code == 409 and r.get_json()["error"] == "other_user"
    assert _status(conn, ticket["id"]) == "open"
    r = client.post(url, headers=headers, data={"action": "accept", "key": uuid.uuid4().hex,
                                                "user": staff["supervisor"]})
    assert r.status_code == 200 and _status(conn, ticket["id"]) == "acknowledged"
    page = client.get(f"/crew/tickets/{ticket['public_id']}").get_data(as_text=True)
    assert f'"user": "{staff["supervisor"]}"' in page      # the page knows who it acts for


def _set_times(conn, request_id, **ago):
    """Move a ticket's times into the past: requested_at / expected_at / closed_at = now() - N hours."""
    for column, hours in ago.items():
        conn.execute(text(f"UPDATE service_requests SET {column} = now() - make_interval(hours => :h) "
                          "WHERE id = :i"), {"h": hours, "i": request_id})
    conn.commit()


def test_a_ticket_closed_before_its_due_date_is_not_overdue(client, staff, conn):
    in_time, late, still_open = _dog(conn), _dog(conn), _dog(conn)
    user = _user(conn)
    for t in (in_time, late):
        crew.act(conn, user, t["public_id"], "close", key=uuid.uuid4().hex, reason="fixed")
    _set_times(conn, in_time["id"], requested_at=30 * 24, closed_at=5 * 24, expected_at=2 * 24)
    _set_times(conn, late["id"], requested_at=30 * 24, closed_at=24, expected_at=2 * 24)
    _set_times(conn, still_open["id"], requested_at=30 * 24, expected_at=2 * 24)
    assert crew.ticket_detail(conn, user, in_time["public_id"])["sla"] == "closed_in_time"
    assert crew.ticket_detail(conn, user, late["public_id"])["sla"] == "closed_late"
    assert crew.ticket_detail(conn, user, still_open["public_id"])["sla"] == "overdue"
    login(client, staff["crew"])

    def head(t):
        page = client.get(f"/crew/tickets/{t['public_id']}").get_data(as_text=True)
        return " ".join(re.search(r'<header class="ticket-head".*?</header>', page, re.S).group(0).split())
    closed_in_time = head(in_time)
    assert "overdue" not in closed_in_time and "closed in time" in closed_in_time
    assert "closed after 25 d" in closed_in_time and " h old" not in closed_in_time   # ages as the list shows them
    assert "Due " in closed_in_time and "Fixed / done" in closed_in_time
    closed_late = head(late)
    assert "closed late" in closed_late and "overdue" not in closed_late and "closed after 29 d" in closed_late
    open_late = head(still_open)
    assert "overdue" in open_late and "30 d old" in open_late and "Due " in open_late


def test_ticket_state_follows_the_ticket_without_showing_callers(client, staff, conn):
    ticket = _dog(conn)
    login(client, staff["crew"])
    state = client.get(f"/crew/tickets/{ticket['public_id']}/state").get_json()
    assert (state["status"], state["may_act"], state["crew_code"]) == ("open", True, "animal-control-c6")
    boss = _user(conn, role="supervisor", crews=(), username="test-supervisor")
    crew.act(conn, boss, ticket["public_id"], "reassign", key=uuid.uuid4().hex, crew_code="animal-control-a1",
             reason="Closer to A1")
    state = client.get(f"/crew/tickets/{ticket['public_id']}/state").get_json()
    assert (state["may_act"], state["crew_code"]) == (False, "animal-control-a1")
    assert "you can see it, not change it" in state["head"] and "reassigned" in state["history"]
    assert "Ann Caller" not in repr(state) and "Closer to A1" not in state["history"]
    viewed = conn.execute(text("SELECT count(*) FROM contact_audit WHERE request_id = :i AND context = 'crew.ticket'"),
                          {"i": ticket["id"]}).scalar()
    assert viewed == 0                      # no caller shown, nothing to audit
    login(client, staff["analyst"])
    assert client.get(f"/crew/tickets/{ticket['public_id']}/state").status_code == 403


def test_reopen_and_duplicate_through_the_crew_page(client, staff, conn):
    original, copy = _dog(conn), _dog(conn)
    login(client, staff["crew"])
    page = client.get(f"/crew/tickets/{copy['public_id']}").get_data(as_text=True)
    assert "duplicate-form" not in page and "reopen-form" not in page      # supervisors only
    login(client, staff["supervisor"])
    page = client.get(f"/crew/tickets/{copy['public_id']}").get_data(as_text=True)
    assert 'id="duplicate-form"' in page and 'id="reopen-form"' in page
    headers = {"X-CSRFToken": _csrf(client), "Accept": "application/json"}
    url = f"/crew/tickets/{copy['public_id']}/actions"
    r = client.post(url, headers=headers, data={"action": "duplicate", "duplicate_of": f"#{original['public_id']}",
                                                "key": uuid.uuid4().hex, "user": staff["supervisor"]})
    assert r.status_code == 200 and r.get_json()["status"] == "closed"
    head = client.get(f"/crew/tickets/{copy['public_id']}/state").get_json()["head"]
    assert f"Duplicate of <a href=\"/crew/tickets/{original['public_id']}\">#{original['public_id']}</a>" in head
    r = client.post(url, headers=headers, data={"action": "reopen", "reason": "Not the same dog",
                                                "key": uuid.uuid4().hex, "user": staff["supervisor"]})
    assert r.status_code == 200 and r.get_json()["status"] == "open"
    r = client.post(url, headers=headers, data={"action": "duplicate", "duplicate_of": "999999999",
                                                "key": uuid.uuid4().hex})
    assert r.status_code == 404 and _status(conn, copy["id"]) == "open"
