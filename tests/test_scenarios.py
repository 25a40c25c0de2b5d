"""A day at the demo city's 311, end to end (../shared/SCENARIOS.md), walked as one story with real parts.

The tests below are the story's steps, in order, on the same ticket: an agent takes a call in Chromium
(scenario 1) and the real outbox worker (`pin311 worker --once`) texts the caller through a local
stand-in of Twilio's API; a second caller is attached to it (4); a C6 animal-control officer closes it
from a phone-sized Chromium (5) and both callers are texted; a resident finds it on the public site,
whose every output is searched for the callers' details (6); the same report from Cambridge is refused
in every channel (8), also as a Cambridge *address* that the geocoder can only match fuzzily to a
Boston street; the voice menu reads the ticket's status (9).

Each step keeps what it made for the next (the `story` marker turns off the per-test clean-up; the
module fixture removes everything when the story ends) and is skipped when a step it needs failed.
"""
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from urllib.parse import urljoin

import pytest
import requests
from georeport import GeoReport
from sqlalchemy import text

from gis import crew
from tests.conftest import forget_since, high_water_marks, screenshot
from tests.console_fixtures import _open_console, _pick
from tests.crew_browser_fixtures import _photo_file, phone  # noqa: F401  (phone: the 390×844 Chromium fixture)
from tests.crew_fixtures import _user
from tests.notify_fixtures import PIN311, TOKEN, _signed, _TwilioApi, outside_world  # noqa: F401
from tests.test_public import _csrf
from tests.test_tiles import decode, fresh_version, tile_of

pytestmark = [pytest.mark.story]

SOUTH_BOSTON = (42.3345, -71.0398)        # 615 E Fourth St: ward 6, police C6, South Boston
CAMBRIDGE = (42.3736, -71.1097)
FIRST_CALLER = {"phone": "+16175550142", "first_name": "Orsolya", "last_name": "Quennevilleton"}
SECOND_CALLER = {"phone": "+16175550177", "first_name": "Barnabas", "last_name": "Wixenthorpe"}
SECOND_ADDRESS = "515 E Fifth St"         # 78 m from 615 E Fourth St
DESCRIPTION = "Brown dog, no collar, pacing by the bus stop (caller-words-4711)"
PUBLIC_NOTE = "The dog was caught and taken to the animal shelter."
INTERNAL_NOTE = "Owner traced by microchip, internal-note-8826"
OFFICER = "c6-officer"


# every form a caller's details could take in a public output, and what staff wrote that is not public
def _forms(c):
    area, exchange, line = c["phone"][2:5], c["phone"][5:8], c["phone"][8:]
    return (c["first_name"], c["last_name"], c["phone"], area + exchange + line, f"{exchange}{line}",
            f"{area}-{exchange}-{line}", f"({area}) {exchange}-{line}", f"{exchange}-{line}")


NEEDLES = _forms(FIRST_CALLER) + _forms(SECOND_CALLER) + ("caller-words-4711", "internal-note-8826",
                                                          "microchip")


@pytest.fixture(scope="module")
def story(engine, app, tmp_path_factory):
    """What the steps hand on to each other; everything the story made is removed when it ends."""
    marks = high_water_marks(engine)
    saved_media = app.config["MEDIA_DIR"]
    app.config["MEDIA_DIR"] = str(tmp_path_factory.mktemp("media"))
    yield {}
    app.config["MEDIA_DIR"] = saved_media
    forget_since(engine, marks)


def _needs(story, *keys):
    missing = [k for k in keys if k not in story]
    if missing:
        pytest.skip(f"an earlier step of the story failed (no {', '.join(missing)})")


def _worker_once(env):
    """The real outbox worker, as a city runs it from cron or systemd: `pin311 worker --once`."""
    done = subprocess.run([PIN311, "worker", "--once"], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "notifying by sms" in done.stdout, done.stdout      # it saw the Twilio settings


def _texts_to(number):
    return [m["Body"] for m in _TwilioApi.received if m["To"] == number]


def _leaks(label, body):
    return [f"{label}: {n!r}" for n in NEEDLES if n.lower() in body.lower()]


# --- scenario 1: the stray dog, on a call -------------------------------------------------------------------

@pytest.mark.browser
def test_scenario1_agent_takes_the_stray_dog_call_and_the_caller_is_texted(
        story, page, live_server, staff, conn, outside_world):  # noqa: F811
    env, _ = outside_world
    _open_console(page, live_server, staff["agent"], "/agent/call?from=%2B16175550142")
    assert "Incoming call · +16175550142" in page.text_content("#caller-h")
    assert page.input_value("#c-phone") == FIRST_CALLER["phone"]
    page.fill("#c-first", FIRST_CALLER["first_name"])
    page.fill("#c-last", FIRST_CALLER["last_name"])
    _pick(page, "#address-search", "615 E Fourth St", "615 E Fourth St")
    page.wait_for_selector("#place [data-k=police_districts][data-code=C6]")
    assert page.get_attribute("#place [data-k=wards]", "data-code") == "6"
    assert page.inner_text("#place [data-k=wards]") == "Ward 6"
    assert page.get_attribute("#place [data-k=neighborhoods]", "data-code") == "south-boston"
    assert "615 E Fourth St" in page.inner_text("#place [data-k=address]")
    _pick(page, "#service-search", "dog", "Animal Generic Request")
    # its questions appear: what kind of animal (required), is it aggressive, how many
    for code in ("animal_type", "aggressive", "animal_count"):
        page.wait_for_selector(f"#attr-{code}")
    assert "What kind of animal?" in page.inner_text("#attributes")
    assert "Is it aggressive?" in page.inner_text("#attributes")
    page.select_option("#attr-animal_type", "dog")
    page.select_option("#attr-aggressive", "no")
    page.fill("#attr-animal_count", "1")
    page.fill("#description", DESCRIPTION)
    page.wait_for_selector("#crew-name:has-text('Animal Control – C6')")
    preview_expected = page.get_attribute("#routing time", "datetime")
    assert preview_expected, "the panel shows no expected date"
    assert re.search(r"\d", page.inner_text("#routing .expected"))
    screenshot(page, "scenario1-agent-before-submit")

    page.click("#submit")
    page.wait_for_selector("#ticket-number")
    number = page.inner_text("#ticket-number").strip()
    assert re.fullmatch(r"\d+", number)
    assert "Animal Control – C6" in page.inner_text("#ticket") and "Expected by" in page.inner_text("#ticket")
    screenshot(page, "scenario1-agent-ticket")

    row = conn.execute(text("""SELECT r.id, r.channel, r.attributes, r.districts, r.expected_at,
                                      r.requested_at, c.code AS crew, ct.phone, ct.first_name
                                 FROM service_requests r JOIN crews c ON c.id = r.crew_id
                                 JOIN contacts ct ON ct.request_id = r.id
                                WHERE r.public_id = :p"""), {"p": number}).one()
    assert row.channel == "agent" and row.crew == "animal-control-c6"
    assert row.attributes == {"animal_type": "dog", "aggressive": "no", "animal_count": 1}
    assert row.districts["wards"]["code"] == "6" and row.districts["police_districts"]["code"] == "C6"
    assert (row.phone, row.first_name) == (FIRST_CALLER["phone"], FIRST_CALLER["first_name"])
    # the date the panel promised before submitting is the one stored (72 h service level)
    promised = datetime.fromisoformat(preview_expected.replace("Z", "+00:00"))
    assert abs(promised - row.expected_at) < timedelta(minutes=5), (promised, row.expected_at)
    assert row.expected_at - row.requested_at > timedelta(hours=24)
    story.update(number=number, id=row.id)

    # the outbox worker texts the caller that the request was received, with the number to read back
    _worker_once(env)
    texts = _texts_to(FIRST_CALLER["phone"])
    assert len(texts) == 1, texts
    assert number in texts[0] and "received" in texts[0] and "Animal Generic Request" in texts[0]


# --- scenario 4: the same dog, a second caller 80 m away ----------------------------------------------------

@pytest.mark.browser
def test_scenario4_a_second_caller_is_attached_to_the_open_ticket(story, page, live_server, staff, conn):
    _needs(story, "number")
    before = conn.scalar(text("SELECT max(id) FROM service_requests"))
    _open_console(page, live_server, staff["agent"], "/agent/call?from=%2B16175550177")
    page.fill("#c-first", SECOND_CALLER["first_name"])
    page.fill("#c-last", SECOND_CALLER["last_name"])
    _pick(page, "#address-search", SECOND_ADDRESS, SECOND_ADDRESS)
    page.wait_for_selector("#place [data-k=police_districts][data-code=C6]")
    _pick(page, "#service-search", "stray dog", "Animal Generic Request")
    dupe = page.locator(f"#duplicates li[data-public-id='{story['number']}']")
    dupe.wait_for()
    metres = int(re.search(r"\b(\d+) m away", dupe.inner_text()).group(1))
    assert 70 <= metres <= 90, dupe.inner_text()
    screenshot(page, "scenario4-agent-duplicate")
    dupe.locator("button.attach").click()
    page.wait_for_selector(f"#ticket-number:has-text('{story['number']}')")
    assert "attached" in page.inner_text("#ticket").lower()
    screenshot(page, "scenario4-agent-attached")

    assert conn.scalar(text("SELECT max(id) FROM service_requests")) == before      # no new ticket
    callers = conn.execute(text("SELECT phone, notify FROM contacts WHERE request_id = :i ORDER BY id"),
                           {"i": story["id"]}).all()
    assert [tuple(c) for c in callers] == [(FIRST_CALLER["phone"], True), (SECOND_CALLER["phone"], True)]
    story["attached"] = True


# --- scenario 5: the officer on the street ------------------------------------------------------------------

@pytest.fixture(scope="module")
def officer(engine):
    """An animal-control officer of C6, made the way an administrator does (`pin311 users create`)."""
    from app.auth import users
    from tests.conftest import STAFF_PASSWORD
    with engine.begin() as c:
        users.create(c, OFFICER, STAFF_PASSWORD, "crew", "C6 Officer", ("animal-control-c6",))
    return OFFICER


@pytest.mark.browser
def test_scenario5_the_c6_officer_closes_it_from_the_phone_and_both_callers_are_texted(
        story, phone, officer, live_server, conn, outside_world):  # noqa: F811
    from tests.conftest import browser_login
    _needs(story, "number", "attached")
    env, _ = outside_world
    number = story["number"]
    page = phone.new_page()
    browser_login(page, live_server, officer)
    page.wait_for_url(f"{live_server}/crew/")
    page.wait_for_selector("#tickets li.ticket")
    cards = page.eval_on_selector_all("#tickets li.ticket",
                                      "els => els.map(e => [e.dataset.publicId, +e.dataset.distance])")
    assert cards[0][0] == number, cards[:3]
    expected = crew.near_me(conn, _user(conn, username=officer), *SOUTH_BOSTON, scope="mine", limit=50)
    assert [c[0] for c in cards] == [t["public_id"] for t in expected]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390      # no sideways scrolling
    screenshot(page, "scenario5-crew-near-me")

    page.click(f"#tickets li.ticket[data-public-id='{number}'] a")
    page.wait_for_url(f"**/crew/tickets/{number}")
    page.click("button[data-action=accept]")
    page.wait_for_selector("#action-message[data-kind=ok]:has-text('Accepted')")
    page.click("button[data-action=start]")
    page.wait_for_selector("#action-message[data-kind=ok]:has-text('Started')")
    page.select_option("#close-reason", "fixed")
    page.fill("#close-note", PUBLIC_NOTE)
    page.fill("#close-internal", INTERNAL_NOTE)
    page.set_input_files("#close-photo", files=[_photo_file()])
    page.click("#close-form button[type=submit]")
    page.wait_for_selector("#action-message[data-kind=ok]:has-text('Closed')")
    screenshot(page, "scenario5-crew-closed")

    events = conn.execute(text("SELECT kind, actor, public_note, media FROM request_events "
                               "WHERE request_id = :i ORDER BY id"), {"i": story["id"]}).all()
    assert [e.kind for e in events] == ["created", "caller_attached", "acknowledged", "started", "closed"]
    closed = events[-1]
    assert closed.actor == f"crew:{officer}" and closed.public_note == PUBLIC_NOTE and closed.media
    story["closed"] = True

    _worker_once(env)
    for caller in (FIRST_CALLER, SECOND_CALLER):
        closed = [t for t in _texts_to(caller["phone"]) if "closed" in t]
        assert len(closed) == 1, (caller["phone"], _TwilioApi.received)
        assert number in closed[0] and PUBLIC_NOTE in closed[0] and INTERNAL_NOTE not in closed[0]
        assert "is closed: fixed." in closed[0]                  # the caller hears why it closed
    # accepting and starting are not news to the callers: only the closure was texted
    others = [t for c in (FIRST_CALLER, SECOND_CALLER) for t in _texts_to(c["phone"]) if "closed" not in t]
    assert others == [], others


# --- scenario 6: the resident checks ------------------------------------------------------------------------

@pytest.mark.browser
def test_scenario6_the_resident_sees_closed_and_the_note_and_nobodys_details(story, page, live_server, app):
    _needs(story, "number", "closed")
    number = story["number"]
    page.goto(f"{live_server}/map")
    page.click("nav >> text=Find my request")
    page.fill("#number", number)
    page.click("form button[type=submit]")
    page.wait_for_url(f"**/requests/{number}")
    assert page.inner_text(".badge").startswith("closed")
    assert PUBLIC_NOTE in page.inner_text("main")
    assert "Animal Generic Request" in page.inner_text("main")
    screenshot(page, "scenario6-public-status")
    assert _leaks("probe", f"Call {FIRST_CALLER['first_name']} on 617-555-0142")   # the scan can see a leak
    leaks = _leaks("status page", page.content())

    card = requests.get(f"{live_server}/requests/{number}.json", timeout=10)
    assert card.status_code == 200 and card.json()["card"]["status"] == "closed"
    assert any(e.get("note") == PUBLIC_NOTE for e in card.json()["history"])
    leaks += _leaks("status card JSON", card.text)

    fresh_version(app)
    z, x, y = tile_of(*SOUTH_BOSTON, 16)
    tile = requests.get(f"{live_server}/tiles/requests/{z}/{x}/{y}.mvt", timeout=10)
    assert tile.status_code == 200
    features = decode(tile.content)["requests"]["features"]
    mine = [f["properties"] for f in features if str(f["properties"].get("public_id")) == number]
    assert len(mine) == 1 and mine[0]["status"] == "closed"
    leaks += _leaks("z16 tile", repr(features))

    for fmt in ("json", "xml"):
        one = requests.get(f"{live_server}/open311/v2/requests/{number}.{fmt}?extensions=true", timeout=10)
        assert one.status_code == 200
        if fmt == "json":
            assert one.json()[0]["status"] == "closed"
        else:
            assert ET.fromstring(one.content).find("request/status").text == "closed"
        leaks += _leaks(f"Open311 {fmt}", one.text)
        read = GeoReport(f"{live_server}/open311/v2", output_format=fmt).get_service_request(number)
        assert read["service_request_id"] == number and read["status"] == "closed"
    assert not leaks, "\n".join(leaks)


# --- scenario 8: the same report from Cambridge, in every channel -------------------------------------------

def test_scenario8_cambridge_is_refused_with_a_clear_message_in_every_channel(story, live_server, app, staff,
                                                                              api_key, conn, monkeypatch):
    from tests.conftest import login
    monkeypatch.setenv("PIN311_TWILIO_AUTH_TOKEN", TOKEN)
    lat, lon = CAMBRIDGE
    before = conn.scalar(text("SELECT max(id) FROM service_requests"))

    api = requests.post(f"{live_server}/api/v1/requests", headers={"X-Api-Key": api_key}, timeout=10, json={
        "service_code": "animal-generic", "lat": lat, "lon": lon, "attributes": {"animal_type": "dog"},
        "contact": {"phone": FIRST_CALLER["phone"]}})
    assert api.status_code == 400 and api.json()["error"] == "outside_jurisdiction"
    assert "outside the city" in api.json()["message"]

    for fmt in ("json", "xml"):
        o311 = requests.post(f"{live_server}/open311/v2/requests.{fmt}", timeout=10, data={
            "api_key": api_key, "service_code": "animal-generic", "lat": lat, "long": lon,
            "attribute[animal_type]": "dog"})
        assert o311.status_code == 400
        said = o311.json()[0]["description"] if fmt == "json" else \
            ET.fromstring(o311.content).find("error/description").text
        assert "outside the city" in said, said

    resident = app.test_client()
    form = resident.post("/report", data={"csrf_token": _csrf(resident), "service_code": "animal-generic",
                                          "attribute[animal_type]": "dog", "lat": str(lat), "lon": str(lon)})
    page = form.get_data(as_text=True)
    assert form.status_code == 400 and 'id="report-error"' in page
    assert "outside the city" in re.search(r'id="report-error"[^>]*>(.*?)</div>', page, re.S).group(1)

    texted = _signed(resident, "sms", {"From": "+16175550188", "Body": f"full trash can at {lat}, {lon}",
                                       "MessageSid": "SMcambridge1"}).get_data(as_text=True)
    assert "outside the city" in texted, texted
    by_address = _signed(resident, "sms", {"From": "+16175550188", "MessageSid": "SMcambridge2",
                                           "Body": "full trash can at 1350 Massachusetts Ave, Cambridge"})
    said = by_address.get_data(as_text=True)       # not in the gazetteer: said so, in words for a text
    assert "could not find '1350 Massachusetts Ave, Cambridge'" in said and "inside the city" in said, said

    agent = app.test_client()
    login(agent, staff["agent"])
    where = agent.get(f"/api/v1/locate?lat={lat}&lon={lon}&service_code=animal-generic").get_json()
    assert where["inside_jurisdiction"] is False and not where.get("routing")

    assert conn.scalar(text("SELECT max(id) FROM service_requests")) == before       # nothing was written


# --- scenario 9: the voice menu -----------------------------------------------------------------------------

def _gather_action(twiml):
    gather = ET.fromstring(twiml).find("Gather")
    assert gather is not None, twiml
    return gather


def test_scenario9_the_voice_menu_reads_the_tickets_status(story, client, monkeypatch):
    _needs(story, "number", "closed")
    monkeypatch.setenv("PIN311_TWILIO_AUTH_TOKEN", TOKEN)
    caller = {"From": FIRST_CALLER["phone"], "CallSid": "CAscenario9"}
    menu = _gather_action(_signed(client, "voice", caller).get_data(as_text=True))
    assert "press 1" in menu.find("Say").text
    # Twilio posts the key pressed to the Gather's action, relative to the page that asked
    step = urljoin("http://localhost/channels/voice", menu.get("action")).split("/channels/", 1)[1]
    ask = _gather_action(_signed(client, step, {**caller, "Digits": "1"}).get_data(as_text=True))
    assert "request number" in ask.find("Say").text and ask.get("finishOnKey") == "#"
    step = urljoin("http://localhost/channels/voice", ask.get("action")).split("/channels/", 1)[1]
    answer = _signed(client, step, {**caller, "Digits": story["number"] + "#"})
    said = ET.fromstring(answer.get_data(as_text=True)).find("Say").text
    spoken = " ".join(story["number"])                    # digit by digit, as a voice must say it
    assert said == f"Request {spoken} (Animal Generic Request) is closed.", said


def test_scenario8_a_cambridge_address_is_not_filed_on_a_boston_street(story, live_server, api_key, conn):
    before = conn.scalar(text("SELECT max(id) FROM service_requests"))
    o311 = requests.post(f"{live_server}/open311/v2/requests.json", timeout=10, data={
        "api_key": api_key, "service_code": "animal-generic", "attribute[animal_type]": "dog",
        "address_string": "10 Brattle St, Cambridge, MA 02138"})
    filed = conn.execute(text("SELECT address FROM service_requests WHERE id > :b"), {"b": before}).scalars().all()
    assert o311.status_code == 400 and filed == [], (o311.status_code, filed)
    assert "could not find the address" in o311.json()[0]["description"]
