"""The agent console in a real browser (Debian's chromium): each test is a path an agent walks on a call."""
import re
import time

import pytest
from sqlalchemy import text

from gis import intake
from tests.conftest import STAFF_PASSWORD, browser_login, screenshot

CAMBRIDGE = (42.3736, -71.1097)
SOUTH_BOSTON = (42.3345, -71.0398)      # 615 E Fourth St: police C6

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


PROJECT = "([lat, lon]) => { const p = window.pin311Console.map.project([lon, lat]); return [p.x, p.y]; }"
JUMP = "([lat, lon]) => window.pin311Console.map.jumpTo({center: [lon, lat], zoom: 15})"


def _open_console(page, live_server, username, path="/agent/"):
    browser_login(page, live_server, username)
    page.wait_for_url(re.compile(r".*/agent/.*"))
    if path != "/agent/":
        page.goto(f"{live_server}{path}")
    page.wait_for_function("window.pin311Console && window.pin311Console.map.loaded()", timeout=20000)


def _pick(page, box, words, option_text):
    page.fill(box, words)
    page.wait_for_selector(f"{box.replace('-search', '-options')} li[role=option]:has-text('{option_text}')")
    options = page.locator(f"{box.replace('-search', '-options')} li[role=option]")
    for i in range(options.count()):   # walk to the option with the keyboard, as an agent would
        if option_text in options.nth(i).inner_text():
            break
        page.press(box, "ArrowDown")
    page.press(box, "Enter")


def _panel(page, key):
    return page.locator(f"#place [data-k={key}]")


def _drag_pin_to(page, lat, lon):
    """Drag the marker with the mouse so that it lands on (lat, lon)."""
    src = page.evaluate("""() => { const m = window.pin311Console.map;
        const el = document.querySelector('.maplibregl-marker');
        const p = m.project([+el.dataset.lon, +el.dataset.lat]); return [p.x, p.y]; }""")
    dst = page.evaluate(PROJECT, [lat, lon])
    box = page.locator(".maplibregl-marker").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 3
    page.mouse.move(x, y)
    page.mouse.down()
    steps = 12
    for i in range(1, steps + 1):
        page.mouse.move(x + (dst[0] - src[0]) * i / steps, y + (dst[1] - src[1]) * i / steps)
        time.sleep(0.03)
    page.mouse.up()


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


def _ticket(conn, lat, lon, phone=None, first_name=None, service="animal-generic", attributes=None,
            actor="agent:other"):
    contact = {"phone": phone, "first_name": first_name} if phone else {}
    return intake.submit_request(conn, intake.NewRequest(
        service_code=service, lat=lat, lon=lon, attributes=attributes or {"animal_type": "dog"},
        description="earlier call", channel="agent", actor=actor, contact=contact))


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


def test_a_duplicate_is_offered_and_the_caller_is_attached(page, live_server, staff, conn):
    first = _ticket(conn, SOUTH_BOSTON[0] + 0.00072, SOUTH_BOSTON[1], phone="+1 617 555 0142")  # ~80 m north
    _open_console(page, live_server, staff["agent"], "/agent/call?from=%2B16175550177")
    _pick(page, "#address-search", "615 E Fourth St", "615")
    _pick(page, "#service-search", "dog", "Animal Generic Request")
    dupe = page.locator(f"#duplicates li[data-public-id='{first['public_id']}']")
    dupe.wait_for()
    assert re.search(r"\b(7\d|8\d|9\d) m away", dupe.inner_text())
    screenshot(page, "agent-duplicate")
    dupe.locator("button.attach").click()
    page.wait_for_selector(f"#ticket-number:has-text('{first['public_id']}')")
    assert "attached" in page.inner_text("#ticket").lower()
    phones = set(conn.scalars(text("SELECT phone FROM contacts c JOIN service_requests r "
                                   "ON r.id = c.request_id WHERE r.public_id = :p"),
                              {"p": first["public_id"]}))
    assert phones == {"+16175550142", "+16175550177"}
    # scenario 4: both callers are told when it closes
    assert conn.scalar(text("SELECT bool_and(notify) FROM contacts c JOIN service_requests r "
                            "ON r.id = c.request_id WHERE r.public_id = :p"),
                       {"p": first["public_id"]}) is True
    actor = conn.scalar(text("SELECT e.actor FROM request_events e JOIN service_requests r "
                             "ON r.id = e.request_id WHERE r.public_id = :p AND e.kind = 'caller_attached'"),
                        {"p": first["public_id"]})
    assert actor == f"agent:{staff['agent']}"
    assert conn.scalar(text("SELECT count(*) FROM service_requests "
                            "WHERE description IS DISTINCT FROM 'earlier call' AND id > :id"),
                       {"id": first["id"]}) == 0   # no second ticket


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


def _focused_outline(page):
    return page.evaluate("() => { const s = getComputedStyle(document.activeElement); "
                         "return [document.activeElement.id, s.outlineStyle, s.outlineWidth]; }")


def test_a_whole_call_by_keyboard_with_visible_focus(page, live_server, staff, conn):
    _open_console(page, live_server, staff["agent"])
    assert page.evaluate("document.activeElement.id") == "c-phone"
    page.keyboard.type("617 555 0123")
    page.keyboard.press("Alt+a")
    focused = _focused_outline(page)
    assert focused[0] == "address-search" and focused[1] != "none" and focused[2] != "0px"
    page.keyboard.type("615 E Fourth St")
    page.wait_for_selector("#address-options li[role=option]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#place [data-k=police_districts][data-code=C6]")
    page.focus(".maplibregl-marker")                          # the pin moves with the arrow keys too
    lon_before = page.evaluate("window.pin311Console.state.lon")
    page.keyboard.press("Shift+ArrowRight")
    page.wait_for_function("(x) => window.pin311Console.state.lon > x", arg=lon_before)
    page.keyboard.press("Shift+ArrowLeft")
    page.keyboard.press("Alt+c")
    page.keyboard.type("stray dog")
    page.wait_for_selector("#service-options li[role=option]:has-text('Animal Generic Request')")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "attr-animal_type"
    page.keyboard.press("Control+Enter")                     # the required question is not answered yet
    page.wait_for_selector("#form-message:not([hidden])")
    assert "What kind of animal? is required" in page.inner_text("#form-message")
    assert page.get_attribute("#attr-animal_type", "aria-invalid") == "true"
    page.keyboard.press("d")                                  # select "Dog" by typing
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "attr-animal_count"
    page.keyboard.type("2")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#ticket-number")
    number = page.inner_text("#ticket-number").strip()
    row = conn.execute(text("SELECT attributes, districts FROM service_requests WHERE public_id = :p"),
                       {"p": number}).one()
    assert row.attributes == {"animal_type": "dog", "animal_count": 2}
    assert row.districts["police_districts"]["code"] == "C6"
    assert page.evaluate("document.activeElement.id") == "ticket"      # the number is announced
    screenshot(page, "agent-keyboard-ticket")


def test_an_ambiguous_address_offers_both_places_with_their_neighbourhoods(page, live_server, staff):
    _open_console(page, live_server, staff["agent"])
    page.fill("#address-search", "100 Tremont St")
    options = page.locator("#address-options li[role=option]")
    options.first.wait_for()
    page.wait_for_function("""() => { const t = document.getElementById('address-options').innerText;
                                      return t.includes('Brighton') && t.includes('Downtown'); }""")
    texts = [options.nth(i).inner_text() for i in range(options.count())]
    assert any("Brighton" in t for t in texts) and any("Downtown" in t for t in texts)
    screenshot(page, "agent-ambiguous-address")
    brighton = next(i for i, t in enumerate(texts) if "Brighton" in t)
    for _ in range(brighton):
        page.press("#address-search", "ArrowDown")
    page.press("#address-search", "Enter")
    page.wait_for_selector("#place [data-k=police_districts][data-code=D14]")
    assert page.get_attribute("#place [data-k=neighborhoods]", "data-code") == "brighton" or \
        "Brighton" in page.inner_text("#place [data-k=neighborhoods]")


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
    assert numbers[0] != numbers[1]
    kinds = conn.scalars(text("SELECT attributes->>'animal_type' FROM service_requests WHERE public_id IN (:a, :b) "
                              "ORDER BY id"), {"a": numbers[0], "b": numbers[1]}).all()
    assert kinds == ["dog", "cat"]


# --- one call, one ticket: nothing to attach once the call is on a ticket ------------------------------

def _two_dupes_and_the_call_form(page, live_server, staff, conn):
    near = [_ticket(conn, SOUTH_BOSTON[0] + dy, SOUTH_BOSTON[1], phone="+1 617 555 0142")
            for dy in (0.00072, -0.00054)]                           # ~80 m north, ~60 m south
    _open_console(page, live_server, staff["agent"], "/agent/call?from=%2B16175550177")
    _pick(page, "#address-search", "615 E Fourth St", "615")
    _pick(page, "#service-search", "dog", "Animal Generic Request")
    for t in near:
        page.locator(f"#duplicates li[data-public-id='{t['public_id']}'] button.attach").wait_for()
    return near


def _attached_to(conn, phone):
    return conn.scalars(text("SELECT r.public_id FROM contacts c JOIN service_requests r ON r.id = c.request_id "
                             "WHERE c.phone = :p ORDER BY r.public_id"), {"p": phone}).all()


def test_a_caller_attached_once_cannot_be_attached_to_another_ticket(page, live_server, staff, conn):
    first, second = _two_dupes_and_the_call_form(page, live_server, staff, conn)
    page.click(f"#duplicates li[data-public-id='{first['public_id']}'] button.attach")
    page.wait_for_selector(f"#ticket-number:has-text('{first['public_id']}')")
    other = page.locator(f"#duplicates li[data-public-id='{second['public_id']}'] button.attach")
    assert other.is_disabled()
    reason = page.inner_text("#dupes-locked")
    assert f"#{first['public_id']}" in reason and "Next call" in reason
    assert page.get_attribute(f"#duplicates li[data-public-id='{second['public_id']}'] button.attach",
                              "aria-describedby") == "dupes-locked"
    other.click(force=True)                                        # a disabled button does nothing
    page.keyboard.press("Control+Enter")                           # nor does submitting the form again
    assert f"already on ticket #{first['public_id']}" in page.inner_text("#form-message")
    # a new pin preview (a click on the map) redraws the list: still nothing to attach
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    page.wait_for_timeout(1500)
    assert all(b.is_disabled() for b in page.locator("#duplicates button.attach").all())
    assert page.is_disabled("#submit")
    assert _attached_to(conn, "+16175550177") == [first["public_id"]]
    # the next call may attach again
    page.click("#ticket button")
    page.fill("#c-phone", "+1 617 555 0178")
    _pick(page, "#address-search", "615 E Fourth St", "615")
    _pick(page, "#service-search", "dog", "Animal Generic Request")
    page.click(f"#duplicates li[data-public-id='{second['public_id']}'] button.attach")
    page.wait_for_selector(f"#ticket-number:has-text('{second['public_id']}')")
    assert _attached_to(conn, "+16175550178") == [second["public_id"]]


def test_a_created_ticket_leaves_nothing_to_attach(page, live_server, staff, conn):
    first, _ = _two_dupes_and_the_call_form(page, live_server, staff, conn)
    page.select_option("#attr-animal_type", "dog")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#ticket-number")
    number = page.inner_text("#ticket-number").strip()
    assert all(b.is_disabled() for b in page.locator("#duplicates button.attach").all())
    assert f"#{number}" in page.inner_text("#dupes-locked")
    page.evaluate("() => document.querySelector('#duplicates button.attach').click()")
    page.wait_for_timeout(500)
    assert _attached_to(conn, "+16175550177") == [number]


# --- weak address guesses ------------------------------------------------------------------------------

def test_a_weak_address_guess_says_so_and_asks_before_placing_the_pin(page, live_server, staff):
    _open_console(page, live_server, staff["agent"])
    with page.expect_response(lambda r: "/agent/neighbourhoods" in r.url):
        page.fill("#address-search", "10 Brattle St, Cambridge")
    option = page.locator("#address-options li[role=option]").first
    option.wait_for()
    page.wait_for_timeout(200)                  # the neighbourhood labels are drawn
    said = option.inner_text()
    assert "Seattle St" in said and "Allston" in said
    assert "fuzzy" in said                      # the match type stays beside the neighbourhood
    assert "weak match — check with the caller" in said
    assert page.locator("#address-options li[role=option] .weak").first.is_visible()
    page.press("#address-search", "Enter")
    confirm = page.locator("#weak-confirm")
    confirm.wait_for()
    screenshot(page, "agent-weak-address")
    assert "Seattle St" in confirm.inner_text() and "10 Brattle St, Cambridge" in confirm.inner_text()
    assert page.get_attribute("#weak-confirm", "role") == "alert"
    assert page.evaluate("window.pin311Console.state.lat") is None          # no pin on a guess
    assert page.locator(".maplibregl-marker").count() == 0
    page.click("#weak-no")
    assert page.locator("#weak-confirm").is_hidden()
    assert page.evaluate("window.pin311Console.state.lat") is None
    assert page.evaluate("document.activeElement.id") == "address-search"
    # asked again and the caller says yes: the pin goes there
    page.fill("#address-search", "10 Brattle St, Cambridge")
    option.wait_for()
    page.press("#address-search", "Enter")
    page.click("#weak-yes")
    page.wait_for_selector("#place [data-k=neighborhoods]:not(:text('—'))")
    assert page.evaluate("window.pin311Console.state.candidate.address").startswith("12 Seattle St")
    assert page.locator(".maplibregl-marker").count() == 1


def test_an_exact_address_is_placed_without_asking(page, live_server, staff):
    _open_console(page, live_server, staff["agent"])
    _pick(page, "#address-search", "615 E Fourth St", "615")
    page.wait_for_selector("#place [data-k=police_districts][data-code=C6]")
    assert "weak" not in page.inner_text("#address-options")
    assert page.locator("#weak-confirm").is_hidden()


# --- focus is never hidden under the sticky "Goes to" panel (WCAG 2.4.11) ---------------------------------

def _overlap(a, b):
    return not (a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"]
                or a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"])


def test_tabbing_never_leaves_the_focused_field_under_the_goes_to_panel(page, live_server, staff):
    _open_console(page, live_server, staff["agent"], "/agent/call?from=%2B16175550142")
    _pick(page, "#address-search", "615 E Fourth St", "615")
    _pick(page, "#service-search", "dog", "Animal Generic Request")
    page.wait_for_selector("#crew-name")
    page.evaluate("document.querySelector('.panel').scrollTop = 0")
    page.focus("#service-search")
    seen = []
    for _ in range(12):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
        if not page.evaluate("document.querySelector('.panel').contains(document.activeElement)"):
            break
        if page.evaluate("!!document.activeElement.closest('.dock, .where-card, .dupes-card')"):
            continue
        seen.append(focused)
        field = page.evaluate("(() => { const r = document.activeElement.getBoundingClientRect(); "
                              "return {x: r.x, y: r.y, width: r.width, height: r.height}; })()")
        dock = page.locator(".dock").bounding_box()
        assert not _overlap(field, dock), (focused, field, dock)
    assert "description" in seen, seen


# --- the address box follows the pin --------------------------------------------------------------------

def _click_map_at(page, lat, lon):
    page.evaluate(JUMP, [lat, lon])
    box = page.locator("#map").bounding_box()
    x, y = page.evaluate(PROJECT, [lat, lon])
    page.mouse.click(box["x"] + x, box["y"] + y)


def test_the_address_box_follows_the_pin_when_it_is_moved_on_the_map(page, live_server, staff, conn):
    _open_console(page, live_server, staff["agent"])
    page.fill("#address-search", "100 Tremont St")
    page.wait_for_selector("#address-options li[role=option]:has-text('Brighton')")
    _pick(page, "#address-search", "100 Tremont St", "Brighton")
    page.wait_for_selector("#place [data-k=police_districts][data-code=D14]")
    assert "Brighton" in page.input_value("#address-search")

    _click_map_at(page, *CAMBRIDGE)                                     # outside the city: no address there
    page.wait_for_selector("#where-message[data-state=outside]")
    lat, lon = page.evaluate("[window.pin311Console.state.lat, window.pin311Console.state.lon]")
    assert page.input_value("#address-search") == f"Pin at {lat:.5f}, {lon:.5f}"

    _click_map_at(page, *SOUTH_BOSTON)                                  # inside: the nearest address
    page.wait_for_selector("#place [data-k=police_districts][data-code=C6]")
    nearest = page.inner_text("#place [data-k=address]")
    assert nearest and nearest != "—"
    page.wait_for_function("(a) => document.getElementById('address-search').value === a", arg=nearest)

    _drag_pin_to(page, *_an_address_200_m_away(conn))                        # a drag too
    page.wait_for_function("""(before) => { const v = document.getElementById('address-search').value;
                                           return v && v !== before; }""", arg=nearest, timeout=10000)
    page.wait_for_timeout(800)
    assert page.input_value("#address-search") == page.inner_text("#place [data-k=address]")


def _an_address_200_m_away(conn):
    """An address point ~200 m from 615 E Fourth St (a different nearest address)."""
    row = conn.execute(text("""SELECT ST_Y(geom) AS lat, ST_X(geom) AS lon FROM address_points
        WHERE ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, 260)
          AND NOT ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, 180)
        ORDER BY id LIMIT 1"""), {"lat": SOUTH_BOSTON[0], "lon": SOUTH_BOSTON[1]}).one()
    return row.lat, row.lon


# --- a ticket by its number, and the caller's tickets where they stand ------------------------------------

def _centre_near(page, lat, lon):
    page.wait_for_function("""([lat, lon]) => { const m = window.pin311Console.map, c = m.getCenter();
        return !m.isMoving() && Math.abs(c.lat - lat) < 0.0005 && Math.abs(c.lng - lon) < 0.0005; }""",
                           arg=[lat, lon], timeout=10000)


def test_a_ticket_number_flies_to_the_ticket_and_shows_where_it_stands(page, live_server, staff, conn):
    old = _ticket(conn, SOUTH_BOSTON[0] + 0.0011, SOUTH_BOSTON[1] - 0.0009)
    conn.execute(text("UPDATE service_requests SET requested_at = now() - interval '400 days', "
                      "address_note = 'by the red door' WHERE id = :i"),
                 {"i": old["id"]})
    conn.commit()
    row = conn.execute(text("SELECT ST_Y(geom) AS lat, ST_X(geom) AS lon, requested_at, expected_at "
                            "FROM service_requests WHERE id = :i"), {"i": old["id"]}).one()
    _open_console(page, live_server, staff["agent"])
    page.fill("#find-ticket", f"#{old['public_id']}")
    page.press("#find-ticket", "Enter")
    card = page.locator("#ticket-view")
    page.wait_for_selector(f"#ticket-view-h:has-text('#{old['public_id']}')")
    _centre_near(page, row.lat, row.lon)
    assert page.inner_text("#ticket-view [data-k=status]") == "open"
    assert page.inner_text("#ticket-view [data-k=crew]").startswith("Animal Control")
    assert page.inner_text("#ticket-view [data-k=address_note]") == "by the red door"    # the caller's words
    assert re.search(r"\d", page.inner_text("#ticket-view [data-k=expected]"))
    # a date of another year says its year; this year's does not
    this_year = page.evaluate("new Date().getFullYear()")
    reported = page.inner_text("#ticket-view [data-k=requested]")
    assert str(this_year - 1) in reported or str(this_year - 2) in reported, reported
    expected_year = page.evaluate("(iso) => new Date(iso).getFullYear()", row.expected_at.isoformat())
    if expected_year == this_year:
        assert str(this_year) not in page.inner_text("#ticket-view [data-k=expected]")
    assert page.evaluate("document.activeElement.id") == "ticket-view"
    screenshot(page, "agent-ticket-lookup")
    page.keyboard.press("Escape")
    assert card.is_hidden()

    page.fill("#find-ticket", "999999999")
    page.press("#find-ticket", "Enter")
    page.wait_for_selector("#ticket-view .alert:has-text('No ticket #999999999')")


def test_a_line_of_the_callers_history_or_recent_work_shows_that_ticket(page, live_server, staff, conn):
    open_one = _ticket(conn, *SOUTH_BOSTON, phone="+1 617 555 0142", actor=f"agent:{staff['agent']}")
    mine = _ticket(conn, SOUTH_BOSTON[0] + 0.002, SOUTH_BOSTON[1], actor=f"agent:{staff['agent']}")
    _open_console(page, live_server, staff["agent"], "/agent/call?from=%2B16175550142")
    line = page.locator(f"#caller-history button:has-text('#{open_one['public_id']}')")
    line.wait_for()
    assert "expected" in line.inner_text()
    line.click()
    page.wait_for_selector(f"#ticket-view-h:has-text('#{open_one['public_id']}')")
    assert page.inner_text("#ticket-view [data-k=status]") == "open"
    assert re.search(r"\d", page.inner_text("#ticket-view [data-k=expected]"))
    _centre_near(page, *SOUTH_BOSTON)
    recent = page.locator(f"#recent-list button:has-text('#{mine['public_id']}')")
    recent.click()
    page.wait_for_selector(f"#ticket-view-h:has-text('#{mine['public_id']}')")
    _centre_near(page, SOUTH_BOSTON[0] + 0.002, SOUTH_BOSTON[1])


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
