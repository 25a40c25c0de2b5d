"""Field crews without a connection, in Debian's chromium at a phone's size: several actions on one
ticket and on another taken offline, the page reloaded and opened offline (served by the crew pages'
service worker, app/static/js/crew-sw.js), then sent in order, once each; a refused one shown with
why; sign-out and someone else signing in leave no offline copy of the crew's pages behind.

Playwright's offline mode (context.set_offline) reaches the service worker's own fetches too in this
chromium: a page reloaded offline comes from the worker's copy, not from the live server."""
import io
import time

from PIL import Image
from sqlalchemy import text

from gis import crew
from tests.conftest import browser_login, screenshot
from tests.crew_browser_fixtures import PHONE, _sign_in_elsewhere, media_dir, phone  # noqa: F401  (fixtures)
from tests.crew_fixtures import STRAY_DOG, _dog, _user

PAGES = "pin311-crew-pages"


def _photo_file():
    buf = io.BytesIO()
    Image.new("RGB", (80, 60), (90, 140, 60)).save(buf, "JPEG")
    return {"name": "porch.jpg", "mimeType": "image/jpeg", "buffer": buf.getvalue()}


def _crew_with_worker(context, live_server, username):
    """A page of the phone signed in as `username` on "near me", once the crew pages' service worker
    controls it (and has kept the list page)."""
    page = context.new_page()
    browser_login(page, live_server, username)
    page.wait_for_url(f"{live_server}/crew/")
    page.wait_for_selector("#tickets li.ticket")                   # the list is kept by the page too
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=20000)
    _wait_kept(page, "/crew/")
    return page


def _kept(page):
    """{path: text} of the copies the worker keeps for the signed-in person."""
    return page.evaluate("""async (name) => {
        if (!(await caches.has(name))) return {};
        const cache = await caches.open(name), out = {};
        for (const r of await cache.keys()) out[new URL(r.url).pathname] = await (await cache.match(r)).text();
        return out; }""", PAGES)


def _wait_kept(page, *paths, timeout=15):
    deadline = time.monotonic() + timeout
    while not set(paths) <= set(_kept(page)):
        assert time.monotonic() < deadline, (paths, sorted(_kept(page)))
        page.wait_for_timeout(200)


def _until(page, script, timeout=30):
    """Wait until `script` (awaited, run through the DevTools protocol: no eval under the page's CSP)
    is true."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(script):
        assert time.monotonic() < deadline, script
        page.wait_for_timeout(200)


QUEUE_EMPTY = "JSON.parse(localStorage.getItem('pin311.crew.queue') || '[]').length === 0"


def _open(page, live_server, ticket):
    page.goto(f"{live_server}/crew/tickets/{ticket['public_id']}")
    page.wait_for_selector("#history")


def _queue(page):
    return page.evaluate("JSON.parse(localStorage.getItem('pin311.crew.queue') || '[]')")


def _waiting(page):
    return [tuple(x) for x in page.eval_on_selector_all(
        "#outbox-waiting li", "els => els.map(e => [e.dataset.ticket, e.dataset.action])")]


def _events(conn, *tickets):
    conn.rollback()
    return conn.execute(text("SELECT r.public_id, e.kind, e.idempotency_key, e.internal_note, e.public_note, e.media "
                             "FROM request_events e JOIN service_requests r ON r.id = e.request_id "
                             "WHERE e.request_id = ANY(:ids) AND e.kind <> 'created' ORDER BY e.id"),
                        {"ids": [t["id"] for t in tickets]}).all()


def _queued(page, selector):
    """Click and wait for the page to say the action is saved on the phone."""
    page.evaluate("document.getElementById('action-message').dataset.kind = ''")
    page.click(selector)
    page.wait_for_selector("#action-message[data-kind=queued]")


def test_offline_actions_on_two_tickets_are_sent_in_order_once_each(phone, live_server, staff, conn, media_dir):
    first, second = _dog(conn), _dog(conn, lat=STRAY_DOG[0] + 0.0008, phone="+16175550143")
    one, two = first["public_id"], second["public_id"]
    page = _crew_with_worker(phone, live_server, staff["crew"])
    _open(page, live_server, first)
    assert "Ann Caller" in page.inner_text("#contacts")            # the callers, on the live page
    _open(page, live_server, second)
    _wait_kept(page, f"/crew/tickets/{one}", f"/crew/tickets/{two}")
    kept = _kept(page)
    assert "Ann Caller" not in "".join(kept.values())              # … never in the copies on the phone
    assert "Stray dog by the park" in kept[f"/crew/tickets/{one}"]

    phone.set_offline(True)
    _queued(page, "button[data-action=accept]")                   # the second ticket: accepted
    page.goto(f"{live_server}/crew/tickets/{one}")                # the first, opened again offline
    page.wait_for_selector("#offline-banner[data-state=copy]")
    assert "Stray dog by the park" in page.inner_text("main") and "Ann Caller" not in page.inner_text("main")
    _queued(page, "button[data-action=accept]")
    page.wait_for_selector("#status:has-text('acknowledged (waiting to send)')")
    _queued(page, "button[data-action=start]")
    page.wait_for_selector("#status:has-text('in progress (waiting to send)')")
    page.click("#note-box summary")
    page.fill("#note-text", "Dog seen under the porch of no. 615")
    page.set_input_files("#note-photo", files=[_photo_file()])
    _queued(page, "#note-form button[type=submit]")
    assert page.input_value("#note-text") == ""                   # safe in the queue: the form is free again
    page.select_option("#close-reason", "fixed")
    page.fill("#close-note", "Taken to the shelter on Fourth St.")
    _queued(page, "#close-form button[type=submit]")
    page.wait_for_selector("#status:has-text('closed (waiting to send)')")
    assert page.is_hidden("#actions") and page.is_visible("#note-box")   # a note still goes on a closed ticket
    page.goto(f"{live_server}/crew/tickets/{two}")
    page.wait_for_selector("#status:has-text('acknowledged (waiting to send)')")
    _queued(page, "button[data-action=start]")

    in_order = [(two, "accept"), (one, "accept"), (one, "start"), (one, "note"), (one, "close"), (two, "start")]
    assert _waiting(page) == in_order
    assert "Taken to the shelter on Fourth St." in page.inner_text("#outbox-waiting")   # what was typed, kept
    page.reload()                                                   # served by the worker, offline
    page.wait_for_selector("#offline-banner[data-state=copy]")
    assert _waiting(page) == in_order and page.inner_text("#status") == "in progress (waiting to send)"
    page.evaluate("scrollTo(0, 0)")
    screenshot(page, "crew-offline-several-waiting")
    other = phone.new_page()                                        # the app opened afresh, offline
    answer = other.goto(f"{live_server}/crew/")
    assert answer.from_service_worker
    other.wait_for_selector("#list-note:not([hidden])")             # the last list, saying how old it is
    assert other.is_visible("#offline-banner") and other.locator("#tickets li.ticket").count() >= 2
    assert other.inner_text(f"#tickets li[data-public-id='{one}'] .waiting") == "4 waiting to send"
    other.close()
    assert _events(conn, first, second) == []                       # nothing reached the server yet
    saved = _queue(page)

    phone.set_offline(False)
    page.wait_for_function(QUEUE_EMPTY, timeout=30000)
    events = _events(conn, first, second)
    kinds = {"accept": "acknowledged", "start": "started", "note": "note", "close": "closed"}
    assert [(e.public_id, e.kind) for e in events] == [(t, kinds[a]) for t, a in in_order]
    assert [e.idempotency_key for e in events] == [item["key"] for item in saved]   # once each, in order
    assert events[3].internal_note == "Dog seen under the porch of no. 615" and events[3].media
    assert events[4].public_note == "Taken to the shelter on Fourth St."
    page.wait_for_function("document.querySelectorAll('#outbox-sent li').length === 6")
    assert page.is_hidden("#outbox-waiting-box")
    page.wait_for_selector("#status:text-is('in progress')")
    page.wait_for_selector("#offline-banner[data-state=copy-online]")   # a copy still, the connection back

    # The same six sent again (say the answers were lost on the way back): nothing is done twice.
    page.evaluate("items => { localStorage.setItem('pin311.crew.queue', JSON.stringify(items));"
                  " window.dispatchEvent(new Event('online')); }", saved)
    page.wait_for_function(QUEUE_EMPTY, timeout=30000)
    assert len(_events(conn, first, second)) == 6
    assert page.locator("#outbox-sent li:has-text('already received')").count() == 6
    assert len(list(media_dir.glob("*.thumb.jpg"))) == 1
    page.evaluate("document.getElementById('outbox').scrollIntoView()")
    screenshot(page, "crew-offline-several-sent")


def test_a_refused_offline_action_shows_why_and_keeps_the_note(phone, live_server, staff, conn):
    moved, other = _dog(conn), _dog(conn, lat=STRAY_DOG[0] - 0.0008, phone="+16175550144")
    page = _crew_with_worker(phone, live_server, staff["crew"])
    _open(page, live_server, moved)
    _open(page, live_server, other)
    _wait_kept(page, f"/crew/tickets/{moved['public_id']}", f"/crew/tickets/{other['public_id']}")

    phone.set_offline(True)
    page.goto(f"{live_server}/crew/tickets/{moved['public_id']}")
    page.wait_for_selector("#offline-banner[data-state=copy]")
    _queued(page, "button[data-action=accept]")
    page.select_option("#close-reason", "fixed")
    page.fill("#close-note", "We found the dog asleep on the steps.")
    _queued(page, "#close-form button[type=submit]")
    page.goto(f"{live_server}/crew/tickets/{other['public_id']}")
    page.wait_for_selector("#history")
    _queued(page, "button[data-action=accept]")
    # meanwhile a supervisor hands the first ticket to another crew
    boss = _user(conn, role="supervisor", crews=(), username=staff["supervisor"])
    crew.act(conn, boss, moved["public_id"], "reassign", key=f"boss-{moved['public_id']}",
             crew_code="animal-control-a1", reason="Across the district line")

    phone.set_offline(False)
    page.wait_for_function(QUEUE_EMPTY, timeout=30000)
    page.wait_for_selector("#refused:not([hidden]) .refused-item")
    refused = page.locator("#refused .refused-item")
    assert refused.count() == 2                                    # the accept and the close of that ticket
    kept = page.inner_text("#refused")
    assert f"Close #{moved['public_id']}" in kept and "another crew" in kept            # what, and why
    assert "We found the dog asleep on the steps." in kept                             # the note is not lost
    page.evaluate("scrollTo(0, 0)")
    screenshot(page, "crew-offline-refused")
    # the refusals did not stop the action taken after them
    assert [(e.public_id, e.kind) for e in _events(conn, moved, other)] == [
        (moved["public_id"], "reassigned"), (other["public_id"], "acknowledged")]
    assert page.locator(f"#outbox-sent li[data-ticket='{other['public_id']}']").count() == 1


def test_sign_out_forgets_the_offline_copies(phone, live_server, staff, conn):
    ticket = _dog(conn)
    page = _crew_with_worker(phone, live_server, staff["crew"])
    _open(page, live_server, ticket)
    _wait_kept(page, f"/crew/tickets/{ticket['public_id']}")
    page.click("form[action$='/logout'] button")
    page.wait_for_url("**/login**")
    assert page.evaluate("caches.has('pin311-crew-pages')") is False
    left = page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('pin311.crew.'))")
    assert set(left) <= {"pin311.crew.queue", "pin311.crew.refused"}    # each person's own actions only

    # the next person on this phone, without a connection, finds none of the crew's pages
    browser_login(page, live_server, staff["supervisor"])
    page.wait_for_url(lambda url: "/login" not in url)
    phone.set_offline(True)
    for path in (f"/crew/tickets/{ticket['public_id']}", "/crew/"):
        answer = page.goto(f"{live_server}{path}")
        assert answer.from_service_worker and answer.status == 503
        page.wait_for_selector("#offline-missing")
        assert "Stray dog" not in page.content() and "Test Crew" not in page.content()
    assert page.evaluate("caches.has('pin311-crew-pages')") is False


def test_someone_else_signing_in_replaces_the_copies(phone, live_server, staff, conn):
    """Signed in as someone else without signing out (the crew's session simply replaced): the first
    crew page of the new person replaces the crew's copies; the sign-in page forgets them too."""
    ticket = _dog(conn)
    page = _crew_with_worker(phone, live_server, staff["crew"])
    _open(page, live_server, ticket)
    _wait_kept(page, f"/crew/tickets/{ticket['public_id']}")
    _sign_in_elsewhere(phone, live_server, staff["supervisor"])
    page.goto(f"{live_server}/crew/")
    page.wait_for_selector("#tickets")
    deadline = time.monotonic() + 15
    while f"/crew/tickets/{ticket['public_id']}" in _kept(page):
        assert time.monotonic() < deadline, sorted(_kept(page))
        page.wait_for_timeout(200)
    assert staff["supervisor"] in _kept(page)["/crew/"] and staff["crew"] not in "".join(_kept(page).values())
    phone.set_offline(True)
    page.goto(f"{live_server}/crew/tickets/{ticket['public_id']}")
    page.wait_for_selector("#offline-missing")

    phone.set_offline(False)
    page.goto(f"{live_server}/login")                               # any sign-in page forgets them
    _until(page, "caches.has('pin311-crew-pages').then(has => !has)")


def test_offline_reload_under_the_real_csp(browser, live_server, staff, conn):
    """The worker, its copies and the offline page run under the app's Content-Security-Policy (the
    copy keeps the page's own headers); no script is refused."""
    ticket = _dog(conn)
    context = browser.new_context(viewport=PHONE, geolocation={"latitude": STRAY_DOG[0], "longitude": STRAY_DOG[1]},
                                  permissions=["geolocation"])   # CSP enforced
    problems = []
    context.on("page", lambda p: p.on("console", lambda m: problems.append(m.text) if "Content Security Policy"
                                      in m.text or "Refused to" in m.text else None))
    try:
        page = context.new_page()
        browser_login(page, live_server, staff["crew"])
        page.wait_for_url(f"{live_server}/crew/")
        _until(page, "navigator.serviceWorker.controller !== null")
        _open(page, live_server, ticket)
        _wait_kept(page, f"/crew/tickets/{ticket['public_id']}")
        context.set_offline(True)
        answer = page.reload()
        assert answer.from_service_worker and "content-security-policy" in answer.headers
        page.wait_for_selector("#offline-banner[data-state=copy]")
        page.click("button[data-action=accept]")
        page.wait_for_selector("#action-message[data-kind=queued]")
        page.goto(f"{live_server}/crew/tickets/does-not-exist")
        page.wait_for_selector("#offline-missing")
        context.set_offline(False)
        page.goto(f"{live_server}/crew/tickets/{ticket['public_id']}")
        _until(page, QUEUE_EMPTY)
        assert [e.kind for e in _events(conn, ticket)] == ["acknowledged"]
        assert not problems, problems
    finally:
        context.set_offline(False)
        context.close()


def test_a_phone_out_of_room_says_so_and_keeps_what_was_typed(phone, live_server, staff, conn, media_dir):
    ticket = _dog(conn)
    page = _crew_with_worker(phone, live_server, staff["crew"])
    _open(page, live_server, ticket)
    phone.set_offline(True)
    page.evaluate("""() => {            // fill this origin's localStorage to the last few bytes
        let chunk = 'x'.repeat(1 << 20), i = 0;
        while (chunk.length) {
            try { localStorage.setItem('filler.' + i++, chunk); } catch { chunk = chunk.slice(0, chunk.length >> 1); }
        } }""")
    page.click("#note-box summary")
    page.fill("#note-text", "Gate code 4411, dog behind the shed")
    page.set_input_files("#note-photo", files=[_photo_file()])
    page.click("#note-form button[type=submit]")
    page.wait_for_selector("#action-message[data-kind=bad]:has-text('no room left')")
    assert page.input_value("#note-text") == "Gate code 4411, dog behind the shed"      # nothing lost
    assert page.evaluate("document.getElementById('note-photo').files.length") == 1
    assert _queue(page) == [] and page.is_enabled("#note-form button[type=submit]")
    page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('filler.'))"
                  ".forEach(k => localStorage.removeItem(k))")
    _queued(page, "#note-form button[type=submit]")               # room again: saved, the form emptied
    assert [i["fields"]["internal_note"] for i in _queue(page)] == ["Gate code 4411, dog behind the shed"]
