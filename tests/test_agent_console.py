"""The agent console in a real browser (Debian's chromium): each test is a path an agent walks on a call —
the pin and its crew, the caller's history, the questions, refusals, the session, the next call."""
import re
import time

import pytest
from sqlalchemy import text

from tests.conftest import STAFF_PASSWORD, screenshot
from tests.console_fixtures import CAMBRIDGE, JUMP, PROJECT, SOUTH_BOSTON, _drag_pin_to, _open_console, _pick, _ticket


# An address in police district C6 close to the line with a neighbouring district, and the point
# mirrored across that line (so it lies in the neighbour), with the neighbour's animal-control crew.
_ACROSS_A_LINE = text("""
WITH pd AS (SELECT d.code, d.geom FROM districts d JOIN layers l ON l.id = d.layer_id
             WHERE l.name = 'police_districts'),
     home AS (SELECT geom FROM pd WHERE code = 'C6'),
     -- the neighbours' outlines cut into short pieces, so the index finds the addresses near each piece
     line AS MATERIALIZED (SELECT pd.code, ST_Subdivide(ST_Boundary(pd.geom), 16) AS g FROM pd, home
                            WHERE pd.code <> 'C6' AND ST_Intersects(pd.geom, home.geom)),
     near AS (SELECT ap.number, ap.street, ap.geom, line.code AS other, ST_ClosestPoint(line.g, ap.geom) AS cp
                FROM line JOIN address_points ap ON ST_DWithin(ap.geom, line.g, 0.0007)
               WHERE ap.number IS NOT NULL AND ap.unit IS NULL),
     m AS (SELECT near.*, ST_SetSRID(ST_MakePoint(2 * ST_X(cp) - ST_X(near.geom),
                                                  2 * ST_Y(cp) - ST_Y(near.geom)), 4326) AS dp
             FROM near, home WHERE ST_Covers(home.geom, near.geom))
SELECT m.number, m.street, ST_Y(m.geom) AS lat, ST_X(m.geom) AS lon, ST_Y(dp) AS to_lat, ST_X(dp) AS to_lon,
       m.other, c.name AS other_crew
  FROM m JOIN pd d2 ON d2.code = m.other AND ST_Covers(d2.geom, m.dp)
  JOIN routing_rules r ON r.service_code = 'animal-generic' AND r.strategy = 'district'
       AND r.layer = 'police_districts' AND r.district_code = m.other
  JOIN crews c ON c.id = r.crew_id
 WHERE ST_Distance(m.geom::geography, m.dp::geography) BETWEEN 40 AND 120
   AND (SELECT count(*) FROM address_points x WHERE x.street = m.street AND x.number = m.number) = 1
 ORDER BY m.street, m.number LIMIT 1""")


def _panel(page, key):
    return page.locator(f"#place [data-k={key}]")


@pytest.fixture
def across(conn):
    row = conn.execute(_ACROSS_A_LINE).first()
    assert row is not None, "the demo city should have a C6 address near a police-district line"
    return row


def test_search_drag_across_police_line_then_submit(page, live_server, staff, across, conn):
    _open_console(page, live_server, staff["agent"])
    page.fill("#c-phone", "+1 617 555 0199")
    _pick(page, "#address-search", f"{across.number} {across.street.title()}", str(across.number))
    page.wait_for_selector("#place [data-k=police_districts][data-code=C6]")
    _pick(page, "#service-search", "stray dog", "Animal Generic Request")
    page.select_option("#attr-animal_type", "dog")
    page.wait_for_selector("#crew-name:has-text('Animal Control – C6')")
    screenshot(page, "agent-before-drag")

    _drag_pin_to(page, across.to_lat, across.to_lon)
    page.wait_for_selector(f"#crew-name:has-text('{across.other_crew}')", timeout=10000)
    assert _panel(page, "police_districts").get_attribute("data-code") == across.other
    dropped = page.evaluate("() => [window.pin311Console.state.lat, window.pin311Console.state.lon]")
    assert abs(dropped[0] - across.to_lat) < 0.0004 and abs(dropped[1] - across.to_lon) < 0.0004
    screenshot(page, "agent-after-drag")

    page.fill("#description", "Brown dog, no collar, near the corner")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#ticket-number")
    number = page.inner_text("#ticket-number").strip()
    screenshot(page, "agent-ticket")
    row = conn.execute(text("""SELECT r.districts, c.name AS crew, r.channel, ct.phone
                                 FROM service_requests r JOIN crews c ON c.id = r.crew_id
                                 LEFT JOIN contacts ct ON ct.request_id = r.id
                                WHERE r.public_id = :p"""), {"p": number}).one()
    assert row.crew == across.other_crew
    assert row.districts["police_districts"]["code"] == across.other
    expected_ward = conn.scalar(text("""SELECT d.code FROM districts d JOIN layers l ON l.id = d.layer_id
        WHERE l.name = 'wards' AND ST_Covers(d.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
        ORDER BY d.code LIMIT 1"""), {"lat": dropped[0], "lon": dropped[1]})
    assert row.districts["wards"]["code"] == expected_ward
    assert row.channel == "agent" and row.phone == "+16175550199"
    # scenario 1: the caller will get an SMS that the request was received (queued with the ticket)
    assert conn.scalar(text("SELECT count(*) FROM outbox o JOIN service_requests r "
                            "ON o.payload->>'request_id' = r.id::text "
                            "WHERE r.public_id = :p AND o.topic = 'notify'"), {"p": number}) == 1
    assert page.locator("#ticket").inner_text().count(across.other_crew) == 1

    # A second press (double submit) creates nothing more.
    page.evaluate("() => { window.pin311Console.state.done = false; }")
    page.keyboard.press("Control+Enter")
    page.wait_for_timeout(800)
    assert conn.scalar(text("SELECT count(*) FROM service_requests WHERE description = "
                            "'Brown dog, no collar, near the corner'")) == 1


def test_screen_pop_shows_the_callers_history_and_prefills_the_contact(page, live_server, staff, conn):
    from gis import lifecycle
    old = _ticket(conn, 42.3401, -71.0589, phone="+1 617 555 0142", first_name="Dana")
    lifecycle.apply(conn, old["public_id"], "close", "crew:x", reason="fixed", public_note="Done")
    open_one = _ticket(conn, *SOUTH_BOSTON, phone="617-555-0142", first_name="Dana")
    _open_console(page, live_server, staff["agent"], "/agent/call?from=%2B16175550142")
    history = page.locator("#caller-history")
    history.locator(f"text=#{open_one['public_id']}").wait_for()
    assert f"#{old['public_id']}" in history.inner_text()
    assert "2 earlier tickets, 1 open" in history.inner_text()
    # open tickets come first
    assert history.inner_text().index(open_one["public_id"]) < history.inner_text().index(old["public_id"])
    assert page.input_value("#c-phone") == "+16175550142"
    assert page.input_value("#c-first") == "Dana"
    screenshot(page, "agent-screen-pop")


def test_a_pin_outside_the_city_is_refused_with_a_message(page, live_server, staff, conn):
    before = conn.scalar(text("SELECT count(*) FROM service_requests"))
    _open_console(page, live_server, staff["agent"])
    _pick(page, "#service-search", "dog", "Animal Generic Request")
    page.select_option("#attr-animal_type", "dog")
    page.evaluate(JUMP, list(CAMBRIDGE))
    box = page.locator("#map").bounding_box()
    x, y = page.evaluate(PROJECT, list(CAMBRIDGE))
    page.mouse.click(box["x"] + x, box["y"] + y)
    message = page.locator("#where-message[data-state=outside]")
    message.wait_for()
    assert "Outside the city" in message.inner_text()
    assert page.is_disabled("#submit")
    assert _panel(page, "police_districts").inner_text() == "—"
    screenshot(page, "agent-outside-city")
    # Even if the console were bypassed, the API's refusal is shown as a sentence, not a raw error.
    page.evaluate("() => { window.pin311Console.state.inside = null; }")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#form-message:not([hidden])")
    assert "outside the city" in page.inner_text("#form-message")
    assert "{" not in page.inner_text("#form-message")
    assert conn.scalar(text("SELECT count(*) FROM service_requests")) == before


def test_signed_out_users_are_sent_to_sign_in_and_come_back_to_the_call(page, live_server, staff):
    page.goto(f"{live_server}/agent/call?from=%2B16175550142")
    assert "/login" in page.url
    assert page.locator("#username").is_visible()
    page.fill("#username", staff["agent"])
    page.fill("#password", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/agent/call\?from=.*"))
    assert page.input_value("#c-phone") == "+16175550142"


def test_tickets_from_other_agents_arrive_live(page, live_server, staff, engine):
    _open_console(page, live_server, staff["supervisor"])
    page.wait_for_selector("#live-status[data-state=live]", timeout=10000)
    page.evaluate(JUMP, list(SOUTH_BOSTON))
    with engine.connect() as other_agent:
        started = time.monotonic()
        ticket = _ticket(other_agent, SOUTH_BOSTON[0] - 0.0004, SOUTH_BOSTON[1] + 0.0003)
    page.wait_for_selector(f"#live-feed li[data-public-id='{ticket['public_id']}']", timeout=5000)
    assert time.monotonic() - started < 5
    # On the map too: from the vector tiles (or the console's GeoJSON before the tile service existed).
    page.wait_for_function("""(id) => {
        const tiles = JSON.parse(document.getElementById('console-settings').textContent).tiles;
        const options = tiles ? {sourceLayer: 'requests'} : {};
        return window.pin311Console.map.querySourceFeatures('requests', options)
                 .some((f) => String(f.properties.public_id) === id); }""",
                           arg=ticket["public_id"], timeout=8000)
    screenshot(page, "agent-live")


def test_list_questions_render_as_checkboxes_and_are_checked(page, live_server, staff, conn):
    _open_console(page, live_server, staff["agent"])
    _pick(page, "#address-search", "615 E Fourth St", "615")
    _pick(page, "#service-search", "graffiti", "Graffiti")
    boxes = page.locator("#attributes fieldset.checks input[type=checkbox]")
    assert boxes.count() >= 2
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#form-message:not([hidden])")
    assert "required" in page.inner_text("#form-message")
    boxes.nth(0).check()
    boxes.nth(1).check()
    chosen = [boxes.nth(0).get_attribute("value"), boxes.nth(1).get_attribute("value")]
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#ticket-number")
    attrs = conn.scalar(text("SELECT attributes FROM service_requests WHERE public_id = :p"),
                        {"p": page.inner_text("#ticket-number").strip()})
    code = page.get_attribute("#attributes fieldset.checks", "data-code")
    assert sorted(attrs[code]) == sorted(chosen)


def test_the_apis_own_refusals_are_shown_in_the_panel(page, live_server, staff, conn):
    """A question the server requires but the page did not (catalogue edited mid-call): named, not dumped."""
    before = conn.scalar(text("SELECT count(*) FROM service_requests"))
    _open_console(page, live_server, staff["agent"])
    _pick(page, "#address-search", "615 E Fourth St", "615")
    _pick(page, "#service-search", "dog", "Animal Generic Request")
    page.evaluate("() => window.pin311Console.state.service.attributes"
                  ".forEach((a) => { a.required = false; })")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#form-message:not([hidden])")
    assert "What kind of animal? is required" in page.inner_text("#form-message")
    assert page.get_attribute("#attr-animal_type", "aria-invalid") == "true"
    assert "required" in page.inner_text("#attr-animal_type-err")
    assert conn.scalar(text("SELECT count(*) FROM service_requests")) == before


def test_an_expired_session_mid_call_says_sign_in_again(page, live_server, staff, conn):
    before = conn.scalar(text("SELECT count(*) FROM service_requests"))
    _open_console(page, live_server, staff["agent"])
    _pick(page, "#address-search", "615 E Fourth St", "615")
    _pick(page, "#service-search", "dog", "Animal Generic Request")
    page.select_option("#attr-animal_type", "dog")
    page.wait_for_selector("#crew-name")         # no request in flight that could bring the cookie back
    page.wait_for_timeout(500)
    page.context.clear_cookies()                 # the session ends while the agent is on the call
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#form-message:not([hidden])")
    assert "sign in again" in page.inner_text("#form-message")
    assert page.input_value("#service-search") == "Animal Generic Request"    # the form is kept
    assert conn.scalar(text("SELECT count(*) FROM service_requests")) == before
    # signing in again in another tab (same browser) and pressing submit again creates the ticket
    form = page.context.request.get(f"{live_server}/login").text()   # another tab of the same browser
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    signed_in = page.context.request.post(f"{live_server}/login", form={
        "username": staff["agent"], "password": STAFF_PASSWORD, "csrf_token": token})
    assert signed_in.ok
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#ticket-number")
    assert conn.scalar(text("SELECT count(*) FROM service_requests")) == before + 1


def test_next_call_starts_a_clean_form_with_a_new_idempotency_key(page, live_server, staff, conn):
    _open_console(page, live_server, staff["agent"], "/agent/call?from=%2B16175550142")
    numbers = []
    for animal in ("dog", "cat"):
        _pick(page, "#address-search", "615 E Fourth St", "615")
        _pick(page, "#service-search", "dog", "Animal Generic Request")
        page.select_option("#attr-animal_type", animal)
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("#ticket-number")
        numbers.append(page.inner_text("#ticket-number").strip())
        page.click("#ticket button")                     # "Next call"
        assert page.input_value("#address-search") == "" and page.input_value("#c-phone") == ""
        assert page.locator("#ticket").is_hidden() and page.locator("#attributes *").count() == 0
        assert page.url.endswith("/agent/")
        # nor does ↓ in the empty box bring back the last call's places or categories
        for box in ("#address-search", "#service-search"):
            page.press(box, "ArrowDown")
            assert page.locator(f"{box.replace('-search', '-options')} li").count() == 0
    assert numbers[0] != numbers[1]
    kinds = conn.scalars(text("SELECT attributes->>'animal_type' FROM service_requests WHERE public_id IN (:a, :b) "
                              "ORDER BY id"), {"a": numbers[0], "b": numbers[1]}).all()
    assert kinds == ["dog", "cat"]


@pytest.mark.skipif(not __import__("os").environ.get("PIN311_README_SHOT"),
                    reason="makes app/static/img/console.png for the README (PIN311_README_SHOT=1)")
def test_readme_screenshot(page, live_server, staff, conn):
    from pathlib import Path
    earlier = _ticket(conn, 42.3318, -71.0421, phone="+1 617 555 0142", first_name="Dana",
                      service="street-light-outage", attributes={"problem": "out"})
    _ticket(conn, SOUTH_BOSTON[0] + 0.0007, SOUTH_BOSTON[1] - 0.0002, phone="+1 617 555 0100")
    _open_console(page, live_server, staff["agent"], "/agent/call?from=%2B16175550142")
    page.locator(f"#caller-history >> text=#{earlier['public_id']}").wait_for()
    _pick(page, "#address-search", "615 E Fourth St", "615")
    _pick(page, "#service-search", "stray dog", "Animal Generic Request")
    page.select_option("#attr-animal_type", "dog")
    page.select_option("#attr-aggressive", "no")
    page.fill("#description", "Brown dog without a collar, friendly, near the bus stop")
    page.wait_for_selector("#duplicates li.dupe")
    page.wait_for_selector("#crew-name:has-text('Animal Control – C6')")
    page.evaluate("() => window.pin311Console.map.jumpTo({zoom: 15.4})")
    page.wait_for_timeout(1500)
    out = Path(__file__).resolve().parent.parent / "app" / "static" / "img" / "console.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out))
