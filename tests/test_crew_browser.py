"""The crew view in Debian's chromium at a phone's size (390×844), with the device's location granted
(or refused): near me in distance order → open → accept → start → close with a photo; the "I am here" pin;
my route on the map; another crew's ticket; the page following each answer; a small phone; a supervisor."""
import json

import pytest
from sqlalchemy import text

from gis import crew, crew_route
from tests.conftest import browser_login, screenshot
from tests.crew_browser_fixtures import PHONE, _actors, _photo_file, _status
from tests.crew_browser_fixtures import media_dir, phone  # noqa: F401  (fixtures)
from tests.crew_fixtures import STRAY_DOG, _dog, _user


def test_scenario5_near_me_then_close_with_photo(phone, live_server, staff, conn, media_dir):
    ticket = _dog(conn)
    page = phone.new_page()
    browser_login(page, live_server, staff["crew"])
    page.wait_for_url(f"{live_server}/crew/")
    page.wait_for_selector("#tickets li.ticket")
    page.wait_for_function("document.querySelector('#map canvas') !== null")
    cards = page.eval_on_selector_all("#tickets li.ticket",
                                      "els => els.map(e => [e.dataset.publicId, +e.dataset.distance])")
    assert cards[0][0] == ticket["public_id"]
    assert f"#{ticket['public_id']}" in page.inner_text("#tickets li.ticket >> nth=0")   # the ticket number
    distances = [d for _, d in cards]
    assert distances == sorted(distances)
    expected = crew.near_me(conn, _user(conn), *STRAY_DOG, scope="mine", limit=50)
    assert [c[0] for c in cards] == [t["public_id"] for t in expected]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]   # no sideways scrolling
    screenshot(page, "crew-near-me")

    page.click(f"#tickets li.ticket[data-public-id='{ticket['public_id']}'] a")
    page.wait_for_url(f"**/crew/tickets/{ticket['public_id']}")
    assert "Stray dog by the park" in page.inner_text("main")
    assert page.get_attribute("#nav-geo", "href").startswith(f"geo:{STRAY_DOG[0]:.6f},{STRAY_DOG[1]:.6f}")
    page.click("button[data-action=accept]")
    page.wait_for_selector("#action-message[data-kind=ok]:has-text('Accepted')")
    page.click("button[data-action=start]")
    page.wait_for_selector("#action-message[data-kind=ok]:has-text('Started')")
    page.select_option("#close-reason", "fixed")
    page.fill("#close-note", "The dog was taken to the shelter.")
    page.fill("#close-internal", "Owner tag: none")
    page.set_input_files("#close-photo", files=[_photo_file()])
    page.click("#close-form button[type=submit]")
    page.wait_for_selector("#action-message[data-kind=ok]:has-text('Closed')")
    screenshot(page, "crew-ticket-closed")

    assert _status(conn, ticket["id"]) == "closed"
    events = conn.execute(text("SELECT kind, actor, public_note, internal_note, media FROM request_events "
                               "WHERE request_id = :i ORDER BY id"), {"i": ticket["id"]}).all()
    assert [e.kind for e in events] == ["created", "acknowledged", "started", "closed"]
    closed = events[-1]
    assert closed.actor == "crew:test-crew" and closed.public_note == "The dog was taken to the shelter."
    assert closed.internal_note == "Owner tag: none"
    assert (media_dir / f"{closed.media}.jpg").exists() and (media_dir / f"{closed.media}.thumb.jpg").exists()
    notify = conn.execute(text("SELECT count(*) FROM outbox WHERE topic = 'notify' "
                               "AND payload ->> 'kind' = 'closed' "
                               "AND (payload ->> 'request_id')::bigint = :i"), {"i": ticket["id"]}).scalar()
    assert notify == 1
    seen = conn.execute(text("SELECT ST_Y(last_position), ST_X(last_position) FROM crews "
                             "WHERE code = 'animal-control-c6'")).one()
    assert seen == (pytest.approx(STRAY_DOG[0], abs=1e-6), pytest.approx(STRAY_DOG[1], abs=1e-6))

    page.reload()
    page.wait_for_selector(".photos img")
    assert page.evaluate("document.querySelector('.photos img').naturalWidth") > 0   # served to staff
    assert "Owner tag: none" in page.inner_text("#history")
    assert "m from the spot" in page.inner_text(".photos")     # EXIF GPS shown to staff only
    screenshot(page, "crew-ticket-history")


def test_refused_location_uses_the_i_am_here_pin(browser, live_server, staff, conn):
    ticket = _dog(conn)
    context = browser.new_context(bypass_csp=True, viewport=PHONE, is_mobile=True, has_touch=True, permissions=[])
    try:
        page = context.new_page()
        browser_login(page, live_server, staff["crew"])
        page.wait_for_url(f"{live_server}/crew/")
        page.wait_for_selector("#where[data-state=refused]", timeout=20000)
        page.evaluate("localStorage.removeItem('pin311.crew.position')")
        page.wait_for_function("document.querySelector('#map canvas') !== null")
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector("#where[data-state=manual]")
        page.wait_for_selector("#tickets li.ticket")
        where = page.evaluate("JSON.parse(localStorage.getItem('pin311.crew.position'))")
        assert where["manual"] is True
        cards = page.eval_on_selector_all("#tickets li.ticket", "els => els.map(e => e.dataset.publicId)")
        expected = crew.near_me(conn, _user(conn), where["lat"], where["lon"], scope="mine", limit=50)
        assert cards == [t["public_id"] for t in expected] and ticket["public_id"] in cards
        screenshot(page, "crew-i-am-here")
    finally:
        context.close()


def test_my_route_on_the_map(phone, live_server, staff, conn):
    for dlat, dlon in ((0.001, 0.002), (-0.001, 0.004), (0.0005, -0.003)):
        _dog(conn, lat=STRAY_DOG[0] + dlat, lon=STRAY_DOG[1] + dlon)
    page = phone.new_page()
    browser_login(page, live_server, staff["crew"])
    page.wait_for_url(f"{live_server}/crew/")
    page.wait_for_selector("#tickets li.ticket")
    page.click("#tab-route")
    page.wait_for_selector("#route-summary:not([hidden])")
    assert not page.is_visible("#filters")
    stops = page.eval_on_selector_all("#tickets li.ticket", "els => els.map(e => e.dataset.publicId)")
    plan = crew_route.plan_route(conn, _user(conn), *STRAY_DOG)
    assert stops == [s["public_id"] for s in plan["stops"]]
    route = page.evaluate("JSON.stringify(document.querySelector('#map') && window.maplibregl ? 1 : 0)")
    assert json.loads(route) == 1
    screenshot(page, "crew-my-route")
    # without a connection the last list stays readable, and says how old it is
    phone.set_offline(True)
    page.click("#tab-near")
    page.wait_for_selector("#list-note:not([hidden])")
    assert "No connection" in page.inner_text("#list-note") and page.locator("#tickets li.ticket").count() > 0
    phone.set_offline(False)


def test_another_crews_ticket_has_no_actions(phone, live_server, staff, conn):
    from gis.intake import NewRequest, submit_request
    other = submit_request(conn, NewRequest(service_code="animal-generic", lat=42.3601, lon=-71.0589,
                                            attributes={"animal_type": "cat"}, channel="agent"))
    page = phone.new_page()
    browser_login(page, live_server, staff["crew"])
    page.wait_for_url(f"{live_server}/crew/")
    page.goto(f"{live_server}/crew/tickets/{other['public_id']}")
    assert page.locator("button[data-action]").count() == 0 and page.locator("#close-form").count() == 0
    assert "you can see it, not change it" in page.inner_text("main")
    # and the server refuses the action even when sent by hand from the page
    status = page.evaluate("""async (url) => {
        const body = new FormData(); body.append('action', 'close'); body.append('reason', 'fixed');
        body.append('key', 'by-hand-' + Date.now());
        const r = await fetch(url, {method: 'POST', body, headers: {'Accept': 'application/json',
            'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content}});
        return r.status; }""", f"/crew/tickets/{other['public_id']}/actions")
    assert status == 403 and _status(conn, other["id"]) == "open"


def test_the_ticket_page_follows_each_answer(phone, live_server, staff, conn):
    """After a reassignment the page shows the new crew, drops the buttons and adds the history line;
    after a refusal (the ticket was closed meanwhile) the badge says what the ticket is now."""
    moved, closed = _dog(conn), _dog(conn)
    a1 = conn.execute(text("SELECT name FROM crews WHERE code = 'animal-control-a1'")).scalar()
    page = phone.new_page()
    browser_login(page, live_server, staff["crew"])
    page.wait_for_url(f"{live_server}/crew/")
    page.goto(f"{live_server}/crew/tickets/{moved['public_id']}")
    page.click("#reassign-box summary")
    page.select_option("#reassign-crew", "animal-control-a1")
    page.fill("#reassign-reason", "Across the district line")
    page.click("#reassign-form button[type=submit]")
    page.wait_for_selector("#action-message[data-kind=ok]:has-text('Reassigned')")
    page.wait_for_selector(f"#crew-name:has-text('{a1}')")
    assert page.is_hidden("#actions") and page.is_hidden("#note-box") and page.is_visible("#read-only")
    assert page.is_hidden("#contacts")                    # another crew's callers, as on a reload
    assert "reassigned" in page.inner_text("#history")
    assert "Across the district line" not in page.inner_text("#history")   # another crew's notes, as on a reload
    screenshot(page, "crew-after-reassign")

    page.goto(f"{live_server}/crew/tickets/{closed['public_id']}")
    page.wait_for_selector("button[data-action=accept]:enabled")
    boss = _user(conn, role="supervisor", crews=(), username=staff["supervisor"])
    crew.act(conn, boss, closed["public_id"], "close", key=f"boss-{closed['public_id']}", reason="fixed",
             note="Handled by the supervisor")
    page.click("button[data-action=accept]")
    page.wait_for_selector("#action-message[data-kind=bad]")
    page.wait_for_selector("#status:has-text('closed')")
    assert page.is_hidden("#actions") and "Handled by the supervisor" in page.inner_text("#history")
    assert page.is_hidden("#refused")          # answered on the page itself


def test_a_small_phone_shows_the_filters_and_who_is_signed_in(browser, live_server, staff, conn):
    ticket = _dog(conn)
    context = browser.new_context(bypass_csp=True, viewport={"width": 320, "height": 640}, is_mobile=True,
                                  has_touch=True, geolocation={"latitude": STRAY_DOG[0], "longitude": STRAY_DOG[1]},
                                  permissions=["geolocation"])
    try:
        page = context.new_page()
        browser_login(page, live_server, staff["crew"])
        page.wait_for_url(f"{live_server}/crew/")
        page.wait_for_selector("#tickets li.ticket")
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        for control in ("#f-scope", "#f-service", "#filters label.check"):
            box = page.locator(control).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 320, (control, box)
            assert page.evaluate("s => document.querySelector(s).scrollWidth <= document.querySelector(s).clientWidth",
                                 control), control                 # nothing inside cut off
        assert min(page.locator(s).bounding_box()["width"] for s in ("#f-scope", "#f-service")) >= 130
        screenshot(page, "crew-320px")
        assert page.is_visible(".topbar .who") and "Test Crew" in page.inner_text(".topbar .who")   # shared phones

        page.goto(f"{live_server}/crew/tickets/{ticket['public_id']}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        assert page.input_value("#reassign-crew") == ""                     # no crew chosen for the user
        assert page.evaluate("document.getElementById('reassign-crew').selectedOptions[0].text") == "Choose a crew…"
        page.click("#reassign-box summary")
        page.fill("#reassign-reason", "Not ours")
        page.click("#reassign-form button[type=submit]")
        assert page.evaluate("document.getElementById('reassign-crew').validity.valueMissing")
        page.wait_for_timeout(500)
        assert _actors(conn, ticket["id"]) == [] and page.is_hidden("#action-message")
    finally:
        context.close()


def test_a_supervisor_reopens_then_marks_a_duplicate_on_the_ticket_page(phone, live_server, staff, conn):
    original, ticket = _dog(conn), _dog(conn)
    crew.act(conn, _user(conn), ticket["public_id"], "close", key=f"c-{ticket['public_id']}", reason="fixed")
    page = phone.new_page()
    browser_login(page, live_server, staff["supervisor"])
    page.goto(f"{live_server}/crew/tickets/{ticket['public_id']}")
    assert page.is_hidden("#actions") and page.is_hidden("#duplicate-box")
    page.click("#reopen-box summary")
    page.fill("#reopen-reason", "Caller says the dog is back")
    page.fill("#reopen-note", "We are sending the crew again.")
    page.click("#reopen-form button[type=submit]")
    page.wait_for_selector("#action-message[data-kind=ok]:has-text('Reopened')")
    page.wait_for_selector("#history :text('reopened')")
    assert page.inner_text("#status") == "open" and page.is_enabled("button[data-action=accept]")
    assert page.is_hidden("#reopen-box") and page.is_visible("#duplicate-box")

    page.click("#duplicate-box summary")
    page.fill("#duplicate-of", f"#{original['public_id']}")
    page.click("#duplicate-form button[type=submit]")
    page.wait_for_selector("#action-message[data-kind=ok]:has-text('Closed as a duplicate')")
    page.wait_for_selector(f"#ticket-head a:has-text('#{original['public_id']}')")
    assert page.inner_text("#status") == "closed" and page.is_visible("#reopen-box")
    assert [kind for kind, _ in _actors(conn, ticket["id"])] == ["closed", "reopened", "closed"]
    screenshot(page, "crew-supervisor-duplicate")
