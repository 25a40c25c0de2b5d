"""The agent console with tickets already there (chromium): a possible duplicate and attaching the caller to
it, once only; a ticket number or a line of history that shows where that ticket stands."""
import re

from sqlalchemy import text

from tests.conftest import screenshot
from tests.console_fixtures import SOUTH_BOSTON, _open_console, _pick, _ticket


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
