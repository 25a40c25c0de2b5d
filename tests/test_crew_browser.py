"""The crew view in Debian's chromium at a phone's size (390×844), with the device's location granted
(or refused): near me in distance order → open → accept → start → close with a photo; offline close
replayed exactly once; the "I am here" pin; my route on the map."""
import io
import json
import re

import pytest
from PIL import Image
from sqlalchemy import text

from gis import crew, crew_route
from tests.conftest import STAFF_PASSWORD, browser_login, screenshot
from tests.test_crew import STRAY_DOG, _dog, _exif_rotated_with_gps, _user

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser):
    context = browser.new_context(bypass_csp=True, viewport=PHONE, is_mobile=True, has_touch=True,
                                  device_scale_factor=2,
                                  geolocation={"latitude": STRAY_DOG[0], "longitude": STRAY_DOG[1]},
                                  permissions=["geolocation"])
    errors = []
    context.on("page", lambda page: page.on("pageerror", lambda exc: errors.append(str(exc))))
    yield context
    context.close()
    assert not errors, errors      # no script error on any page


@pytest.fixture
def media_dir(app, tmp_path):
    saved = app.config["MEDIA_DIR"]
    app.config["MEDIA_DIR"] = str(tmp_path)
    yield tmp_path
    app.config["MEDIA_DIR"] = saved


def _photo_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (120, 90), (90, 140, 60)).save(buf, "JPEG", exif=_exif_rotated_with_gps())
    return buf.getvalue()


def _photo_file():
    return {"name": "dog.jpg", "mimeType": "image/jpeg", "buffer": _photo_bytes()}


def _closures(conn, request_id):
    conn.rollback()
    return conn.execute(text("SELECT count(*) FROM request_events WHERE request_id = :i AND kind = 'closed'"),
                        {"i": request_id}).scalar()


def _status(conn, request_id):
    conn.rollback()
    return conn.execute(text("SELECT status FROM service_requests WHERE id = :i"), {"i": request_id}).scalar()


def _ticket_page_as_crew(phone, live_server, staff, ticket):
    """A new page of the phone, signed in as the crew, on the ticket with its close form ready."""
    page = phone.new_page()
    browser_login(page, live_server, staff["crew"])
    page.wait_for_url(f"{live_server}/crew/")
    page.goto(f"{live_server}/crew/tickets/{ticket['public_id']}")
    page.wait_for_selector("#close-form")
    return page


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


def test_offline_close_is_sent_once_when_the_connection_returns(phone, live_server, staff, conn, media_dir):
    ticket = _dog(conn)
    page = _ticket_page_as_crew(phone, live_server, staff, ticket)
    phone.set_offline(True)
    page.select_option("#close-reason", "fixed")
    page.fill("#close-note", "Closed from the truck, offline.")
    page.set_input_files("#close-photo", files=[_photo_file()])
    page.click("#close-form button[type=submit]")
    page.wait_for_selector("#action-message[data-kind=queued]")
    queued = page.evaluate("JSON.parse(localStorage.getItem('pin311.crew.queue'))")
    assert len(queued) == 1 and queued[0]["fields"]["action"] == "close"
    assert queued[0]["photo"].startswith("data:image/")
    assert page.is_visible("#queue-status")
    screenshot(page, "crew-offline-queued")
    assert _status(conn, ticket["id"]) == "open" and _closures(conn, ticket["id"]) == 0

    phone.set_offline(False)
    page.wait_for_selector("#action-message[data-kind=ok]:has-text('Closed')", timeout=20000)
    assert page.evaluate("JSON.parse(localStorage.getItem('pin311.crew.queue'))") == []
    assert _status(conn, ticket["id"]) == "closed" and _closures(conn, ticket["id"]) == 1
    screenshot(page, "crew-offline-replayed")

    # The same action replayed again (say the answer was lost on the way back): still one closure.
    page.evaluate("item => { localStorage.setItem('pin311.crew.queue', JSON.stringify([item]));"
                  " window.dispatchEvent(new Event('online')); }", queued[0])
    page.wait_for_selector("#action-message[data-kind=ok]:has-text('already received')", timeout=20000)
    assert _closures(conn, ticket["id"]) == 1
    photos = conn.execute(text("SELECT count(media) FROM request_events WHERE request_id = :i"),
                          {"i": ticket["id"]}).scalar()
    assert photos == 1 and len(list(media_dir.glob("*.thumb.jpg"))) == 1


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


def test_queued_close_survives_closing_the_tab(phone, live_server, staff, conn, media_dir):
    ticket = _dog(conn)
    page = _ticket_page_as_crew(phone, live_server, staff, ticket)
    phone.set_offline(True)
    page.select_option("#close-reason", "not_found")
    page.click("#close-form button[type=submit]")
    page.wait_for_selector("#action-message[data-kind=queued]")
    page.close()                                     # the phone's browser is closed while offline
    assert _status(conn, ticket["id"]) == "open"
    phone.set_offline(False)
    page = phone.new_page()
    page.goto(f"{live_server}/crew/")                # any crew page sends what is waiting
    page.wait_for_function("JSON.parse(localStorage.getItem('pin311.crew.queue') || '[]').length === 0",
                           timeout=20000)
    assert _status(conn, ticket["id"]) == "closed" and _closures(conn, ticket["id"]) == 1
    reason = conn.execute(text("SELECT closure_reason FROM service_requests WHERE id = :i"),
                          {"i": ticket["id"]}).scalar()
    assert reason == "not_found"


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


def _queue(page):
    return page.evaluate("JSON.parse(localStorage.getItem('pin311.crew.queue') || '[]')")


def _actors(conn, request_id):
    conn.rollback()
    return conn.execute(text("SELECT kind, actor FROM request_events WHERE request_id = :i AND kind <> 'created' "
                             "ORDER BY id"), {"i": request_id}).all()


def test_a_queued_action_waits_for_the_user_who_took_it(phone, live_server, staff, conn):
    ticket = _dog(conn)
    page = phone.new_page()
    browser_login(page, live_server, staff["crew"])
    page.wait_for_url(f"{live_server}/crew/")
    page.wait_for_selector("#tickets li.ticket")          # the list is now cached on this phone
    page.goto(f"{live_server}/crew/tickets/{ticket['public_id']}")
    page.wait_for_selector("#close-form")
    page.wait_for_load_state("networkidle")              # no answer still on its way to renew the cookie
    phone.clear_cookies()                                 # the crew's session runs out
    page.select_option("#close-reason", "fixed")
    page.fill("#close-note", "Dog collected.")
    page.click("#close-form button[type=submit]")
    page.wait_for_selector("#action-message[data-kind=queued]")
    assert [i["user"] for i in _queue(page)] == [staff["crew"]]

    # a supervisor picks up the same phone: the crew's action is held, not sent as theirs
    browser_login(page, live_server, staff["supervisor"])
    page.goto(f"{live_server}/crew/")
    page.wait_for_selector(f"#queue-status:has-text('{staff['crew']}')")
    page.wait_for_timeout(1500)
    assert _status(conn, ticket["id"]) == "open" and _actors(conn, ticket["id"]) == []
    assert len(_queue(page)) == 1
    screenshot(page, "crew-queue-held-for-another-user")
    # signing out forgets the cached lists and position; the crew's held action stays for them
    page.click("form[action$='/logout'] button")
    page.wait_for_url("**/login**")
    kept = page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('pin311.crew.')).sort()")
    assert kept == ["pin311.crew.queue"] and len(_queue(page)) == 1

    browser_login(page, live_server, staff["crew"])
    page.wait_for_url(f"{live_server}/crew/")
    page.wait_for_function("JSON.parse(localStorage.getItem('pin311.crew.queue') || '[]').length === 0",
                           timeout=20000)
    assert _actors(conn, ticket["id"]) == [("closed", f"crew:{staff['crew']}")]


def _sign_in_elsewhere(context, live_server, username):
    """Someone else signs in on this browser (its cookie jar), without opening a page: through the
    context's own HTTP client, which shares the pages' cookies."""
    form = context.request.get(f"{live_server}/login").text()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"', form)
    answer = context.request.post(f"{live_server}/login", max_redirects=0, form={
        "username": username, "password": STAFF_PASSWORD, "csrf_token": token.group(1) or token.group(2)})
    assert answer.status == 302, answer.text()[:300]


def test_a_page_left_open_does_not_send_as_the_next_user(phone, live_server, staff, conn):
    """A tab still showing the crew's page while a supervisor signs in elsewhere: the server refuses
    an action the page took for someone else, and the page keeps it for its owner."""
    ticket = _dog(conn)
    page = _ticket_page_as_crew(phone, live_server, staff, ticket)
    _sign_in_elsewhere(phone, live_server, staff["supervisor"])   # same cookies: the crew's tab is now theirs
    page.click("button[data-action=accept]")
    page.wait_for_selector("#action-message[data-kind=queued]")
    assert _actors(conn, ticket["id"]) == [] and [i["user"] for i in _queue(page)] == [staff["crew"]]


def test_a_refused_replay_keeps_the_note_until_dismissed(phone, live_server, staff, conn):
    ticket = _dog(conn)
    page = _ticket_page_as_crew(phone, live_server, staff, ticket)
    phone.set_offline(True)
    page.select_option("#close-reason", "fixed")
    page.fill("#close-note", "We took the dog to the shelter on Fourth St.")
    page.click("#close-form button[type=submit]")
    page.wait_for_selector("#action-message[data-kind=queued]")
    page.close()
    # meanwhile a supervisor closed the ticket: the queued closure is refused when it is replayed
    boss = _user(conn, role="supervisor", crews=(), username=staff["supervisor"])
    crew.act(conn, boss, ticket["public_id"], "close", key=f"boss-{ticket['public_id']}", reason="duplicate")
    phone.set_offline(False)
    page = phone.new_page()
    page.goto(f"{live_server}/crew/")
    page.wait_for_selector("#refused:not([hidden]) .refused-item", timeout=20000)
    assert _queue(page) == []
    kept = page.inner_text("#refused")
    assert f"#{ticket['public_id']}" in kept and "We took the dog to the shelter on Fourth St." in kept
    assert "closed" in kept                                 # why it was refused
    screenshot(page, "crew-refused-kept")
    page.goto(f"{live_server}/crew/tickets/{ticket['public_id']}")   # on every crew page
    page.wait_for_selector("#refused:not([hidden]) .refused-item")
    page.click("#refused .refused-item button:has-text('Dismiss')")
    page.wait_for_selector("#refused", state="hidden")
    page.reload()
    page.wait_for_selector("#history")
    assert page.is_hidden("#refused")


def test_a_refused_close_keeps_the_form(phone, live_server, staff, conn, media_dir):
    ticket = _dog(conn)
    page = _ticket_page_as_crew(phone, live_server, staff, ticket)
    page.select_option("#close-reason", "not_found")
    page.fill("#close-note", "Nothing there when we came.")
    page.fill("#close-internal", "Checked the whole block")
    not_a_picture = {"name": "dog.jpg", "mimeType": "image/jpeg", "buffer": b"this is not a picture"}
    page.set_input_files("#close-photo", files=[not_a_picture])
    page.click("#close-form button[type=submit]")
    page.wait_for_selector("#action-message[data-kind=bad]")
    assert "not a readable" in page.inner_text("#action-message")
    assert page.input_value("#close-reason") == "not_found"
    assert page.input_value("#close-note") == "Nothing there when we came."
    assert page.input_value("#close-internal") == "Checked the whole block"
    assert page.evaluate("document.getElementById('close-photo').files.length") == 1
    assert page.is_hidden("#refused")                      # shown where it was taken, with the form as it was
    # the crew picks a real photo and sends again: done, and only now the form is emptied
    page.set_input_files("#close-photo", files=[_photo_file()])
    page.click("#close-form button[type=submit]")
    page.wait_for_selector("#action-message[data-kind=ok]:has-text('Closed')")
    assert page.input_value("#close-note") == "" and _status(conn, ticket["id"]) == "closed"


def test_an_action_saved_without_a_user_is_not_sent(phone, live_server, staff, conn):
    """Saved by an older page that did not note who took it: not sent as whoever is signed in now."""
    ticket = _dog(conn)
    page = phone.new_page()
    browser_login(page, live_server, staff["crew"])
    page.wait_for_url(f"{live_server}/crew/")
    page.evaluate("item => localStorage.setItem('pin311.crew.queue', JSON.stringify([item]))",
                  {"key": "old-1", "url": f"/crew/tickets/{ticket['public_id']}/actions", "label": "close",
                   "fields": {"action": "close", "reason": "fixed", "note": "Old note"}, "photo": None})
    page.reload()
    page.wait_for_selector("#refused:not([hidden]) .refused-item")
    assert "Old note" in page.inner_text("#refused") and _queue(page) == []
    assert _status(conn, ticket["id"]) == "open"


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
