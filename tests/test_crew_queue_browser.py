"""The crew's queued actions in chromium at a phone's size: an offline close replayed exactly once, a queue
that survives closing the tab, actions sent only as the person who took them, refusals that keep what was typed."""
from sqlalchemy import text

from gis import crew
from tests.conftest import browser_login, screenshot
from tests.crew_browser_fixtures import _actors, _photo_file, _sign_in_elsewhere, _status
from tests.crew_browser_fixtures import media_dir, phone  # noqa: F401  (fixtures)
from tests.crew_fixtures import _dog, _user


def _closures(conn, request_id):
    conn.rollback()
    return conn.execute(text("SELECT count(*) FROM request_events WHERE request_id = :i AND kind = 'closed'"),
                        {"i": request_id}).scalar()


def _ticket_page_as_crew(phone, live_server, staff, ticket):
    """A new page of the phone, signed in as the crew, on the ticket with its close form ready."""
    page = phone.new_page()
    browser_login(page, live_server, staff["crew"])
    page.wait_for_url(f"{live_server}/crew/")
    page.goto(f"{live_server}/crew/tickets/{ticket['public_id']}")
    page.wait_for_selector("#close-form")
    return page


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


def _queue(page):
    return page.evaluate("JSON.parse(localStorage.getItem('pin311.crew.queue') || '[]')")


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
