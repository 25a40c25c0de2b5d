"""The console's server side: who may open it, caller history, attach-caller, outlines, live events."""
import json
import re
import threading
import time

import pytest
from sqlalchemy import text

from gis import intake, lifecycle
from tests.conftest import login

SOUTH_BOSTON = (42.3345, -71.0398)
JSON = {"Accept": "application/json"}


def _ticket(conn, lat=SOUTH_BOSTON[0], lon=SOUTH_BOSTON[1], phone=None, service="animal-generic"):
    return intake.submit_request(conn, intake.NewRequest(
        service_code=service, lat=lat, lon=lon, attributes={"animal_type": "dog"}, channel="agent",
        actor="agent:someone", contact={"phone": phone, "first_name": "Robin"} if phone else {}))


def _csrf(client):
    page = client.get("/agent/").get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


@pytest.mark.parametrize("role, status", [("agent", 200), ("supervisor", 200), ("admin", 200),
                                          ("crew", 403), ("analyst", 403)])
def test_only_agents_and_supervisors_open_the_console(client, staff, role, status):
    login(client, staff[role])
    assert client.get("/agent/").status_code == status
    assert client.get("/agent/callers?phone=6175550142", headers=JSON).status_code == status


@pytest.mark.parametrize("path", ["/agent/", "/agent/call?from=%2B16175550142", "/agent/callers?phone=1",
                                  "/agent/events", "/agent/outlines/wards.geojson", "/agent/recent"])
def test_signed_out_requests_go_to_sign_in_and_see_no_data(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_caller_history_lists_only_that_callers_tickets(client, staff, conn):
    mine = _ticket(conn, phone="(617) 555-0142")
    _ticket(conn, phone="+1 617 555 0999")
    lifecycle.apply(conn, _ticket(conn, phone="6175550142")["public_id"], "close", "crew:x", reason="fixed")
    login(client, staff["agent"])
    body = client.get("/agent/callers?phone=%2B1 617 555 0142", headers=JSON).get_json()
    assert body["phone"] == "+16175550142"
    assert body["contact"]["first_name"] == "Robin"
    assert len(body["tickets"]) == 2 and body["open"] == 1
    assert body["tickets"][0]["public_id"] == mine["public_id"]      # open first
    assert body["tickets"][0]["crew_name"] == "Animal Control – C6"
    bad = client.get("/agent/callers?phone=abc", headers=JSON)
    assert bad.status_code == 400 and "phone" in bad.get_json()["message"]


def test_screen_pop_page_renders_history_and_survives_a_bad_number(client, staff, conn):
    ticket = _ticket(conn, phone="+16175550142")
    login(client, staff["agent"])
    page = client.get("/agent/call?from=%2B16175550142").get_data(as_text=True)
    found = re.search(r'<script type="application/json" id="call-data">(.*?)</script>', page, re.S)
    data = json.loads(found.group(1))
    assert ticket["public_id"] in [t["public_id"] for t in data["tickets"]]
    # contact-centre software often sends the + unencoded (it arrives as a space) or a tel: URI
    for raw in ("+16175550142", "tel:+1-617-555-0142"):
        page = client.get(f"/agent/call?from={raw}").get_data(as_text=True)
        found = re.search(r'<script type="application/json" id="call-data">(.*?)</script>', page, re.S)
        assert json.loads(found.group(1))["phone"] == "+16175550142"
    withheld = client.get("/agent/call?from=%2B266696687").get_data(as_text=True)   # Twilio's "anonymous"
    assert "number is withheld" in withheld and 'id="call-data">null<' in withheld
    bad = client.get("/agent/call?from=%27%3Cscript%3E")
    assert bad.status_code == 200 and "phone number" in bad.get_data(as_text=True)
    assert "<script>" not in bad.get_data(as_text=True).split("<main")[1].split("</main>")[0]


def test_attach_caller_needs_csrf_and_a_contact_and_an_open_request(client, staff, conn):
    ticket = _ticket(conn, phone="+16175550142")
    login(client, staff["agent"])
    url = f"/agent/requests/{ticket['public_id']}/callers"
    body = {"contact": {"phone": "617 555 0177", "first_name": "Sam"}}
    assert client.post(url, json=body, headers=JSON).status_code == 400          # no CSRF token
    token = {"X-CSRFToken": _csrf(client), **JSON}
    empty = client.post(url, json={"contact": {}}, headers=token)
    assert empty.status_code == 400 and "phone" in empty.get_json()["message"]
    done = client.post(url, json=body, headers=token)
    assert done.status_code == 200 and done.get_json()["public_id"] == ticket["public_id"]
    phones = set(conn.scalars(text("SELECT phone FROM contacts WHERE request_id = :id"),
                              {"id": ticket["id"]}))
    assert phones == {"+16175550142", "+16175550177"}
    missing = client.post("/agent/requests/999999999/callers", json=body, headers=token)
    assert missing.status_code == 404
    lifecycle.apply(conn, ticket["public_id"], "close", "crew:x", reason="fixed")
    closed = client.post(url, json=body, headers=token)
    assert closed.status_code == 409 and "closed" in closed.get_json()["message"]


def test_outlines_and_open_requests_as_geojson(client, staff, conn):
    login(client, staff["agent"])
    police = client.get("/agent/outlines/police_districts.geojson").get_json()
    codes = {f["properties"]["code"] for f in police["features"]}
    assert "C6" in codes and "D4" in codes
    assert conn.scalar(text("SELECT count(*) FROM districts d JOIN layers l ON l.id = d.layer_id "
                            "WHERE l.name = 'police_districts'")) == len(codes)
    assert client.get("/agent/outlines/users.geojson", headers=JSON).status_code == 400
    ticket = _ticket(conn)
    lat, lon = SOUTH_BOSTON
    bbox = f"{lon - .002},{lat - .002},{lon + .002},{lat + .002}"
    found = client.get(f"/agent/open-requests.geojson?bbox={bbox}").get_json()
    ids = {f["properties"]["public_id"] for f in found["features"]}
    assert ticket["public_id"] in ids
    assert all(f["properties"]["status"] != "closed" for f in found["features"])
    for bad in ("1,2,3", "nan,1,2,3", "5,5,1,1", "'; DROP TABLE x;--"):
        response = client.get(f"/agent/open-requests.geojson?bbox={bad}", headers=JSON)
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_input"


def test_geocoder_candidates_get_their_neighbourhoods(client, staff):
    login(client, staff["agent"])
    cands = client.get("/api/v1/geocode?q=100 Tremont St&limit=6").get_json()["candidates"]
    assert len(cands) >= 2
    pts = "&".join(f"pt={c['lat']},{c['lon']}" for c in cands)
    names = client.get(f"/agent/neighbourhoods?{pts}").get_json()["neighbourhoods"]
    assert "Brighton" in names and len(set(names)) >= 2
    assert client.get("/agent/neighbourhoods?pt=abc", headers=JSON).status_code == 400


def test_recent_work_agent_sees_own_supervisor_sees_all(app, staff, conn):
    agent, supervisor = app.test_client(), app.test_client()
    login(agent, staff["agent"])
    login(supervisor, staff["supervisor"])
    token = {"X-CSRFToken": _csrf(agent), **JSON}
    made = agent.post("/api/v1/requests", json={"service_code": "animal-generic", "lat": SOUTH_BOSTON[0],
                                                "lon": SOUTH_BOSTON[1], "attributes": {"animal_type": "cat"},
                                                "channel": "agent"}, headers=token)
    assert made.status_code == 201, made.get_json()
    number = made.get_json()["public_id"]
    other = _ticket(conn)    # by agent:someone
    own = [t["public_id"] for t in agent.get("/agent/recent").get_json()["tickets"]]
    everyone = [t["public_id"] for t in supervisor.get("/agent/recent").get_json()["tickets"]]
    assert number in own and other["public_id"] not in own
    assert number in everyone and other["public_id"] in everyone
    # a second caller attached to the same ticket: still one line for it, saying what happened last
    attached = agent.post(f"/agent/requests/{number}/callers", json={"contact": {"phone": "617 555 0178"}},
                          headers=token)
    assert attached.status_code == 200, attached.get_json()
    lines = [t for t in agent.get("/agent/recent").get_json()["tickets"] if t["public_id"] == number]
    assert len(lines) == 1 and lines[0]["kind"] == "caller_attached"


def _read_events(response, out, stop):
    for chunk in response.response:
        out.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
        if stop.is_set():
            break
    response.close()   # closes the stream's generator: the client unsubscribes


def test_live_events_reach_every_console_from_one_watcher(app, staff, engine, monkeypatch):
    from app.agent.events import hub_for
    monkeypatch.setitem(app.config, "AGENT_SSE_KEEPALIVE_SECONDS", 0.2)
    baseline = hub_for(app).subscriber_count()   # consoles of earlier browser tests may still be closing
    clients = [app.test_client() for _ in range(3)]
    streams, outs, stop = [], [], threading.Event()
    for c in clients:
        login(c, staff["agent"])
        response = c.get("/agent/events", buffered=False)
        assert response.status_code == 200 and response.mimetype == "text/event-stream"
        out = []
        threading.Thread(target=_read_events, args=(response, out, stop), daemon=True).start()
        streams.append(response)
        outs.append(out)
    deadline = time.monotonic() + 10
    while not all(any("event: ready" in x for x in out) for out in outs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(any("event: ready" in x for x in out) for out in outs)
    watchers = [t for t in threading.enumerate() if t.name == "pin311-live"]
    assert len(watchers) == 1    # one per server process, however many consoles are open
    with engine.connect() as c:
        ticket = _ticket(c)
    deadline = time.monotonic() + 5
    want = f'"public_id": "{ticket["public_id"]}"'
    while not all(any(want in x for x in out) for out in outs) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for out in outs:
        event = next(x for x in out if want in x)
        assert event.startswith("event: request")
        payload = json.loads(event.split("data: ", 1)[1])
        assert payload["op"] == "INSERT" and payload["status"] == "open"
        assert payload["service_code"] == "animal-generic"
    deadline = time.monotonic() + 5
    while hub_for(app).subscriber_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub_for(app).subscriber_count() <= baseline     # closed streams leave nothing behind


def test_live_events_survive_the_database_sessions_being_killed(app, staff, engine, monkeypatch):
    """What a database restart does to the watcher: its next look reconnects and still reports what was
    written meanwhile (the feed keeps its place), with no resync needed."""
    monkeypatch.setitem(app.config, "AGENT_SSE_KEEPALIVE_SECONDS", 0.2)
    client = app.test_client()
    login(client, staff["agent"])
    response = client.get("/agent/events", buffered=False)
    out, stop = [], threading.Event()
    threading.Thread(target=_read_events, args=(response, out, stop), daemon=True).start()
    deadline = time.monotonic() + 10
    while not any("event: ready" in x for x in out) and time.monotonic() < deadline:
        time.sleep(0.05)
    with engine.connect() as c:
        killed = c.scalar(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        assert killed >= 1     # the app's pooled sessions, the watcher's among them
        ticket = _ticket(c)
    want = f'"public_id": "{ticket["public_id"]}"'
    deadline = time.monotonic() + 10
    while not any(want in x for x in out) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    assert any(want in x for x in out)


def test_console_settings_follow_the_configuration(client, staff, app, monkeypatch):
    """No base map by default (district layers are the base); a configured tile URL is handed to the map."""
    login(client, staff["agent"])

    def settings():
        page = client.get("/agent/").get_data(as_text=True)
        return json.loads(re.search(r'id="console-settings">(.*?)</script>', page, re.S).group(1))

    assert settings()["basemap"] is None
    assert settings()["tiles"] is any(r.rule.startswith("/tiles/") for r in app.url_map.iter_rules())
    monkeypatch.setitem(app.config, "BASEMAP_URL", "https://tiles.example.org/{z}/{x}/{y}.png")
    monkeypatch.setitem(app.config, "DUPLICATE_RADIUS_M", 80)
    assert settings()["basemap"] == "https://tiles.example.org/{z}/{x}/{y}.png"
    assert settings()["duplicateRadius"] == 80


def test_live_streams_are_capped_per_process_and_end_by_themselves(app, staff, monkeypatch):
    """Each open console's stream holds a server thread: past LIVE_STREAMS a console is told 503 + Retry-After
    (and polls) instead of taking the threads every other request needs; a stream ends after its lifetime and
    the browser reconnects, so no stream holds a thread for ever."""
    from app.agent.events import hub_for
    hub = hub_for(app)
    deadline = time.monotonic() + 10      # earlier tests' streams (their reader threads) may still be closing
    while hub.subscriber_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    baseline = hub.subscriber_count()
    monkeypatch.setitem(app.config, "LIVE_STREAMS", baseline + 2)
    monkeypatch.setitem(app.config, "AGENT_SSE_KEEPALIVE_SECONDS", 0.1)
    monkeypatch.setitem(app.config, "LIVE_STREAM_SECONDS", 60)
    clients = [app.test_client() for _ in range(3)]
    for c in clients:
        login(c, staff["agent"])
    held = [c.get("/agent/events", buffered=False) for c in clients[:2]]
    assert [r.status_code for r in held] == [200, 200] and hub.subscriber_count() == baseline + 2
    refused = clients[2].get("/agent/events", headers=JSON)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
    assert refused.get_json()["error"] == "busy"
    held[0].close()                               # a console closes (never read a byte): its place is free again
    assert hub.subscriber_count() == baseline + 1
    monkeypatch.setitem(app.config, "LIVE_STREAM_SECONDS", 0.5)
    short = clients[2].get("/agent/events", buffered=False)
    assert short.status_code == 200
    started = time.monotonic()
    body = b"".join(short.response)               # ends by itself: the generator returns after its lifetime
    assert time.monotonic() - started < 5 and b"retry: 3000" in body
    short.close()
    held[1].close()
    assert hub.subscriber_count() == baseline


@pytest.mark.parametrize("role, links, not_links", [
    ("supervisor", ["/crew/", "/dashboards/", "/dashboards/sweeps"], []),
    ("agent", [], ["/crew/", "/dashboards/"]),
])
def test_the_top_bar_links_the_sides_a_role_opens(app, staff, role, links, not_links):
    """A supervisor signed in at the console had no way to the crew view or sweeps but typing URLs."""
    client = app.test_client()
    login(client, staff[role])
    bar = client.get("/agent/").get_data(as_text=True).split("<header", 1)[1].split("</header>", 1)[0]
    for href in links:
        assert f'href="{href}"' in bar, href
    for href in not_links:
        assert f'href="{href}"' not in bar, href
