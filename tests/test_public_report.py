"""The resident report form after a refusal or a repeat: one ticket per report, nothing typed lost,
places chosen rather than guessed, friendly answers to the rate limit and to an oversized photo."""
import html
import io
import re

from sqlalchemy import text

from tests.test_public import _csrf
from tests.test_tiles import SOUTH_BOSTON

DOG = {"service_code": "animal-generic", "attribute[animal_type]": "dog"}
BRIGHTON = (42.3507, -71.1727)          # 100 Tremont St, Brighton (the other one is Downtown)


def _key(client):
    page = client.get("/report").get_data(as_text=True)
    return re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)


def _count(conn):
    conn.rollback()
    return conn.scalar(text("SELECT count(*) FROM service_requests"))


def _ticket(conn, location):
    number = re.search(r"/report/sent/(\d+)", location).group(1)
    conn.rollback()
    return conn.execute(text("SELECT public_id, address, ST_Y(geom) AS lat, ST_X(geom) AS lon, attributes "
                             "FROM service_requests WHERE public_id = :p"), {"p": number}).one()


def _choices(page):
    return dict((v, html.unescape(label).strip()) for v, label in
                re.findall(r'name="choice" value="([^"]+)"[^>]*>([^<]+)</label>', page))


def test_reloading_the_thank_you_page_or_sending_the_form_again_makes_one_ticket(client, conn):
    token, key = _csrf(client), _key(client)
    form = {"csrf_token": token, "idempotency_key": key, **DOG, "lat": str(SOUTH_BOSTON[0]),
            "lon": str(SOUTH_BOSTON[1])}
    before = _count(conn)
    sent = client.post("/report", data=form)
    assert sent.status_code == 303 and "/report/sent/" in sent.headers["Location"]   # Post/Redirect/Get
    for _ in range(2):                                                                 # shown, then reloaded
        thanks = client.get(sent.headers["Location"])
        assert thanks.status_code == 200 and "Your request number is" in thanks.get_data(as_text=True)
    again = client.post("/report", data=form)                     # double click, or back and send
    assert again.status_code == 303 and _ticket(conn, again.headers["Location"]).public_id == \
        _ticket(conn, sent.headers["Location"]).public_id
    assert "already reached us" in client.get(again.headers["Location"]).get_data(as_text=True)
    assert _count(conn) == before + 1
    other = client.post("/report", data={**form, "idempotency_key": _key(client)})   # a fresh form: a new one
    assert other.status_code == 303 and _count(conn) == before + 2


def test_only_reports_that_made_a_ticket_count_and_the_limit_keeps_what_was_typed(rate_limited):
    client = rate_limited(WTF_CSRF_ENABLED=False, PUBLIC_REPORT_LIMIT="2 per minute").test_client()
    good = {**DOG, "lat": str(SOUTH_BOSTON[0]), "lon": str(SOUTH_BOSTON[1])}
    refused = [client.post("/report", data={**DOG}).status_code for _ in range(3)]    # no place: refused
    assert refused == [400, 400, 400]
    made = [client.post("/report", data={**good, "description": f"dog {i}"}).status_code for i in range(2)]
    assert made == [303, 303]
    over = client.post("/report", data={**good, "description": "Brown dog by the bus stop",
                                        "email": "kept@example.org"})
    page = over.get_data(as_text=True)
    assert over.status_code == 429 and int(over.headers["Retry-After"]) > 0
    assert "several reports in a short time" in page and "per 1 minute" not in page
    assert 'id="report-form"' in page and "Brown dog by the bus stop" in page and 'value="kept@example.org"' in page


def test_ticked_answers_survive_a_refusal_and_an_ambiguous_address_is_chosen(client, conn):
    token = _csrf(client)
    form = {"csrf_token": token, "service_code": "graffiti", "attribute[surface]": ["wall", "sign"],
            "address": "100 Tremont St", "idempotency_key": _key(client)}
    before = _count(conn)
    res = client.post("/report", data=form)
    page = res.get_data(as_text=True)
    assert res.status_code == 400 and _count(conn) == before
    ticked = re.findall(r'name="attribute\[surface\]" value="(\w+)" checked', page)
    assert sorted(ticked) == ["sign", "wall"]
    assert "What is painted on? (choose at least one)" in page
    choices = _choices(page)
    assert len(choices) == 2 and all(v.startswith("at:") for v in choices)
    brighton = next(v for v, label in choices.items() if "Brighton" in label)
    sent = client.post("/report", data={**form, "choice": brighton})
    assert sent.status_code == 303, sent.get_data(as_text=True)[:2000]
    row = _ticket(conn, sent.headers["Location"])
    assert "Brighton" in row.address and abs(row.lat - BRIGHTON[0]) < 1e-4 and abs(row.lon - BRIGHTON[1]) < 1e-4
    assert sorted(row.attributes["surface"]) == ["sign", "wall"]
    unknown = client.post("/report", data={**form, "address": "10 Brattle St, Cambridge", "idempotency_key": ""})
    said = unknown.get_data(as_text=True)
    assert unknown.status_code == 400 and "could not find" in said and "Seattle" not in said
    plain = client.post("/report", data={**form, "address": "615 E Fourth St", "idempotency_key": ""})
    row = _ticket(conn, plain.headers["Location"])
    assert (row.lat, row.lon) == SOUTH_BOSTON and row.address.startswith("615 E Fourth St")


def test_a_pin_far_from_the_typed_address_is_a_question(client, conn):
    token = _csrf(client)
    form = {"csrf_token": token, **DOG, "lat": str(SOUTH_BOSTON[0]), "lon": str(SOUTH_BOSTON[1]),
            "address": "100 Tremont St, Brighton"}
    before = _count(conn)
    asked = client.post("/report", data=form)                  # "Use my position", then the real address
    page = asked.get_data(as_text=True)
    assert asked.status_code == 400 and "apart" in page and _count(conn) == before
    choices = _choices(page)
    assert "pin" in choices and any("Brighton" in label for label in choices.values())
    at_address = client.post("/report", data={**form, "choice": next(v for v in choices if v != "pin")})
    row = _ticket(conn, at_address.headers["Location"])
    assert abs(row.lat - BRIGHTON[0]) < 1e-4 and "Brighton" in row.address
    at_pin = client.post("/report", data={**form, "choice": "pin"})
    row = _ticket(conn, at_pin.headers["Location"])
    assert (row.lat, row.lon) == SOUTH_BOSTON
    agreeing = client.post("/report", data={**form, "address": "615 E Fourth St"})   # the same spot: no question
    row = _ticket(conn, agreeing.headers["Location"])
    assert (row.lat, row.lon) == SOUTH_BOSTON and row.address.startswith("615 E Fourth St")


def test_a_photo_over_the_upload_limit_is_refused_and_what_was_typed_stays(client, app, conn):
    # 12 MB: over the photo limit and over the body limit of every other page (10 MB), yet the report
    # form takes it in (MAX_REPORT_BYTES), so the resident without JavaScript keeps what they typed.
    assert app.config["MAX_CONTENT_LENGTH"] < 12 * 1024 * 1024 < app.config["MAX_REPORT_BYTES"]
    before = _count(conn)
    res = client.post("/report", data={"csrf_token": _csrf(client), **DOG, "lat": str(SOUTH_BOSTON[0]),
                                       "lon": str(SOUTH_BOSTON[1]), "description": "Loose dog by the swings",
                                       "photo": (io.BytesIO(b"\xff" * (12 * 1024 * 1024)), "big.jpg", "image/jpeg")},
                      content_type="multipart/form-data")
    page = res.get_data(as_text=True)
    assert res.status_code == 400 and 'id="report-form"' in page
    assert "larger than 8 MB" in page and "Loose dog by the swings" in page
    assert _count(conn) == before


def test_a_body_over_the_report_limit_gets_the_form_and_what_to_do(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_REPORT_BYTES", 20_000)
    res = client.post("/report", data={"csrf_token": _csrf(client), **DOG, "lat": str(SOUTH_BOSTON[0]),
                                       "lon": str(SOUTH_BOSTON[1]),
                                       "photo": (io.BytesIO(b"\xff" * 40_000), "big.jpg", "image/jpeg")},
                      content_type="multipart/form-data")
    page = res.get_data(as_text=True)
    assert res.status_code == 413 and 'id="report-form"' in page
    assert "photo was too large" in page and "8 MB" in page and "capacity limit" not in page


def test_only_the_report_form_takes_a_larger_body(client, app, api_key, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 20_000)
    monkeypatch.setitem(app.config, "MAX_REPORT_BYTES", 1_000_000)
    r = client.post("/api/v1/requests", data=b"{" + b" " * 40_000 + b"}", content_type="application/json",
                    headers={"X-Api-Key": api_key})
    assert r.status_code == 413 and r.get_json()["error"] == "request_entity_too_large"


def test_resident_in_chromium_is_stopped_before_sending_and_chooses_the_place(page, live_server, conn):
    from tests.conftest import screenshot
    before = _count(conn)
    page.goto(f"{live_server}/report")
    page.select_option("#service_code", "graffiti")
    page.wait_for_selector("#questions[data-service=graffiti] input[type=checkbox]", timeout=10000)
    page.fill("#address", "100 Tremont St")
    page.click("#report-form button[type=submit]")         # nothing ticked: asked here, nothing sent
    message = page.evaluate("document.querySelector('input[name=\"attribute[surface]\"]').validationMessage")
    assert "What is painted on? Choose at least one." == message
    page.check("input[name='attribute[surface]'][value=wall]")
    page.set_input_files("#photo", files=[{"name": "huge.jpg", "mimeType": "image/jpeg",
                                           "buffer": b"\xff" * (9 * 1024 * 1024)}])
    assert "the limit is 8.0 MB" in page.inner_text("#photo-note")
    page.click("#report-form button[type=submit]")         # too big: asked to choose another, nothing sent
    page.wait_for_timeout(300)
    assert page.url.endswith("/report") and _count(conn) == before
    page.set_input_files("#photo", files=[])
    page.click("#report-form button[type=submit]")         # two places called that: choose one
    page.wait_for_selector("#place-choices", timeout=20000)
    assert page.is_checked("input[name='attribute[surface]'][value=wall]")    # the tick survived
    page.wait_for_function("document.querySelector('#pin-map canvas') !== null", timeout=30000)
    page.check("#place-choices label:has-text('Brighton') input")
    assert abs(float(page.input_value("#lat")) - BRIGHTON[0]) < 1e-4        # the pin shows the choice
    screenshot(page, "public-report-choose-place")
    page.click("#place-choices button[type=submit]")
    page.wait_for_selector("#ticket-number", timeout=20000)
    number = page.inner_text("#ticket-number")
    page.reload()                                          # Post/Redirect/Get: reloading sends nothing
    assert page.inner_text("#ticket-number") == number and _count(conn) == before + 1
    row = conn.execute(text("SELECT address, attributes FROM service_requests WHERE public_id = :p"),
                       {"p": number}).one()
    assert "Brighton" in row.address and row.attributes["surface"] == ["wall"]


def test_an_oversized_photo_in_chromium_gets_a_page_that_says_what_to_do(page, live_server, app, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_REPORT_BYTES", 200_000)   # under the form's 8 MB: the server refuses
    page.goto(f"{live_server}/report")
    page.select_option("#service_code", "animal-generic")
    page.wait_for_selector("#questions[data-service=animal-generic] select", timeout=10000)
    page.select_option("#questions select", "dog")
    page.fill("#address", "615 E Fourth St")
    page.set_input_files("#photo", files=[{"name": "big.jpg", "mimeType": "image/jpeg", "buffer": b"\xff" * 400_000}])
    page.click("#report-form button[type=submit]")
    page.wait_for_selector("#report-error", timeout=20000)
    assert "photo was too large" in page.inner_text("#report-error")
    assert page.locator("#report-form").count() == 1
