"""Public site: status pages, near me, the resident report form (intake path, photo, spam guards)."""
import io
import re

import pytest
from PIL import Image
from sqlalchemy import text

from gis import lifecycle
from tests.test_tiles import CONTACT, SOUTH_BOSTON, submit


def _csrf(client, url="/report"):
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _jpeg_with_gps():
    img = Image.new("RGB", (640, 480), (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"                       # Make
    gps = {1: "N", 2: (42.0, 20.0, 4.0), 3: "W", 4: (71.0, 2.0, 23.0)}
    exif[0x8825] = gps
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_status_page_shows_public_history_only(client, conn):
    ticket = submit(conn)
    lifecycle.apply(conn, ticket["public_id"], "acknowledge", "agent:test", public_note="Officer on the way",
                    internal_note="caller sounded upset, call back on 617-555-0199")
    conn.commit()
    page = client.get(f"/requests/{ticket['public_id']}").get_data(as_text=True)
    assert "Officer on the way" in page and "acknowledged" in page
    assert "upset" not in page and "agent:test" not in page
    for value in CONTACT.values():
        assert value not in page
    card = client.get(f"/requests/{ticket['public_id']}.json").get_json()
    assert card["card"]["status"] == "acknowledged" and card["card"]["url"].endswith(ticket["public_id"])
    found = client.get(f"/requests?number={ticket['public_id']}")
    assert found.status_code == 302 and found.headers["Location"].endswith(f"/requests/{ticket['public_id']}")
    assert client.get("/requests/12345678901").status_code == 404
    assert client.get("/requests/'; drop table x").status_code == 404


def test_sensitive_request_status_is_coarsened(client, conn):
    ticket = submit(conn, service="bed-bugs", attributes={}, address="615 E Fourth St")
    card = client.get(f"/requests/{ticket['public_id']}.json").get_json()["card"]
    assert card["coarsened"] is True and card["media_url"] is None
    assert not re.match(r"^\s*\d", card["address"] or "") and "615" not in (card["address"] or "")


def test_near_me_by_address_and_by_position(client, conn):
    ticket = submit(conn)
    page = client.get("/near?address=615 E Fourth St").get_data(as_text=True)
    assert ticket["public_id"] in page
    body = client.get(f"/near?lat={SOUTH_BOSTON[0]}&lon={SOUTH_BOSTON[1]}&format=json").get_json()
    ids = [r["public_id"] for r in body["requests"]]
    assert ticket["public_id"] in ids
    assert [r["metres"] for r in body["requests"]] == sorted(r["metres"] for r in body["requests"])
    assert client.get("/near?lat=abc&lon=1").status_code == 400
    assert client.get("/near?address=zzzz nowhere qqq").status_code in (400, 404)


def test_near_me_places_an_address_by_the_intake_rules(client):
    unknown = client.get("/near?address=10 Brattle St, Cambridge")
    page = unknown.get_data(as_text=True)
    assert unknown.status_code == 400 and "could not find" in page and "Seattle" not in page and "Within" not in page
    twice = client.get("/near?address=100 Tremont St")
    page = twice.get_data(as_text=True)
    assert twice.status_code == 400 and "more than one" in page and "Within" not in page
    links = dict((label, href.replace("&amp;", "&")) for href, label in
                 re.findall(r'<li><a href="([^"]+)">([^<]+)</a></li>', page.split('id="near-choices"')[1]))
    assert {"Boston", "Brighton"} <= {label.split(", ")[1] for label in links}
    brighton = client.get(next(href for label, href in links.items() if "Brighton" in label))
    assert brighton.status_code == 200
    assert "Within 400 m of 100 Tremont St, Brighton, MA 02135" in brighton.get_data(as_text=True)


def test_history_says_each_step_once(client, conn):
    ticket = submit(conn)
    lifecycle.apply(conn, ticket["public_id"], "close", "agent:test", public_note="Case closed",
                    reason="fixed")
    conn.commit()
    page = client.get(f"/requests/{ticket['public_id']}").get_data(as_text=True)
    history = page.split('class="history"')[1].split("</ol>")[0]
    assert "Closed: Case closed" in history and "closed (closed)" not in history
    assert "Reported: Request received" in history


def test_home_page_links_to_find_my_request(client):
    page = client.get("/").get_data(as_text=True)
    assert 'href="/requests"' in page and "Find my request" in page


def test_report_form_submits_on_the_intake_path_with_a_clean_photo(client, conn, app, tmp_path):
    app.config["MEDIA_DIR"] = str(tmp_path)
    token = _csrf(client)
    res = client.post("/report", data={
        "csrf_token": token, "service_code": "animal-generic", "attribute[animal_type]": "dog",
        "lat": str(SOUTH_BOSTON[0]), "lon": str(SOUTH_BOSTON[1]), "description": "Loose dog",
        "first_name": "Pat", "email": "pat.resident@example.org",
        "photo": (io.BytesIO(_jpeg_with_gps()), "dog.jpg", "image/jpeg")}, content_type="multipart/form-data")
    assert res.status_code == 303
    thanks = client.get(res.headers["Location"])
    number = re.search(r'id="ticket-number">(\d+)<', thanks.get_data(as_text=True)).group(1)
    row = conn.execute(text("SELECT r.channel, r.media_url, r.crew_id IS NOT NULL AS routed, c.email "
                            "FROM service_requests r JOIN contacts c ON c.request_id = r.id WHERE r.public_id = :p"),
                       {"p": number}).one()
    assert row.channel == "web" and row.routed and row.email == "pat.resident@example.org"
    photo = client.get(row.media_url.replace("http://localhost", ""))
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg"
    stored = Image.open(io.BytesIO(photo.data))
    assert not stored.getexif()                       # no camera, no GPS
    assert b"SecretCam" not in photo.data
    status = client.get(f"/requests/{number}").get_data(as_text=True)
    assert "pat.resident" not in status and "Pat" not in status


def test_report_form_errors_are_shown_and_nothing_is_written(client, conn):
    before = conn.execute(text("SELECT count(*) FROM service_requests")).scalar()
    token = _csrf(client)
    cases = [
        ({"service_code": "animal-generic", "lat": "42.3345", "lon": "-71.0398"}, "required"),
        ({"service_code": "animal-generic", "attribute[animal_type]": "dog", "lat": "42.3736", "lon": "-71.1097"},
         "outside"),
        ({"service_code": "snow-plowing", "lat": "42.3345", "lon": "-71.0398"}, "unknown service"),
        ({"service_code": "animal-generic", "attribute[animal_type]": "dog"}, "pin"),
        ({"service_code": "animal-generic", "attribute[animal_type]": "dog", "lat": "42.3345", "lon": "-71.0398",
          "website": "http://spam.example"}, "could not be accepted"),
    ]
    for data, message in cases:
        res = client.post("/report", data={"csrf_token": token, **data})
        assert res.status_code in (400, 404, 422) and message in res.get_data(as_text=True).lower(), data
    bad_photo = client.post("/report", data={
        "csrf_token": token, "service_code": "animal-generic", "attribute[animal_type]": "dog",
        "lat": "42.3345", "lon": "-71.0398", "photo": (io.BytesIO(b"%PDF-1.4 not an image"), "x.jpg")},
        content_type="multipart/form-data")
    assert bad_photo.status_code == 400 and "image" in bad_photo.get_data(as_text=True)
    no_csrf = client.post("/report", data={"service_code": "animal-generic", "attribute[animal_type]": "dog",
                                           "lat": "42.3345", "lon": "-71.0398"})
    assert no_csrf.status_code == 400
    assert conn.execute(text("SELECT count(*) FROM service_requests")).scalar() == before


def test_public_map_renders_points_in_chromium(page, live_server, conn):
    from tests.conftest import screenshot
    submit(conn)
    page.goto(f"{live_server}/map")
    page.wait_for_selector("#map[data-ready=true]", timeout=30000)
    page.wait_for_function("window.publicMap.loaded() && window.publicMap.areTilesLoaded()", timeout=30000)
    clusters = page.evaluate("window.publicMap.queryRenderedFeatures({layers: ['request-clusters']}).length")
    assert clusters > 0
    screenshot(page, "public-map-city")
    page.goto(f"{live_server}/map#16/{SOUTH_BOSTON[0]}/{SOUTH_BOSTON[1]}")
    page.wait_for_selector("#map[data-ready=true]", timeout=30000)
    page.wait_for_function("window.publicMap.loaded() && window.publicMap.areTilesLoaded() && "
                           "window.publicMap.queryRenderedFeatures({layers: ['request-points']}).length > 0",
                           timeout=30000)
    # a point well inside the canvas (rendered features include the tile buffer, off-screen)
    point = page.evaluate("""() => { const m = window.publicMap, c = m.getCanvas();
        const w = c.clientWidth, h = c.clientHeight;
        return m.queryRenderedFeatures({layers: ['request-points']})
          .map(f => m.project(f.geometry.coordinates))
          .map(p => [p.x, p.y])
          .find(([x, y]) => x > 40 && x < w - 80 && y > 40 && y < h - 40); }""")
    box = page.locator("#map canvas").bounding_box()
    page.mouse.click(box["x"] + point[0], box["y"] + point[1])
    page.wait_for_selector("#card .badge", timeout=10000)
    assert page.locator("#card a").get_attribute("href").startswith("/requests/")
    screenshot(page, "public-map-card")
    # filters: only closed requests → no open-coloured points remain
    for status in ("open", "acknowledged", "in_progress"):
        page.uncheck(f"input[name=status][value={status}]")
    page.click("#filters button[type=submit]")
    page.wait_for_timeout(1500)
    page.wait_for_function("window.publicMap.areTilesLoaded()", timeout=30000)
    statuses = page.evaluate("[...new Set(window.publicMap.queryRenderedFeatures({layers: ['request-points']})"
                             ".map(f => f.properties.status))]")
    assert set(statuses) <= {"closed"}


def test_phone_map_shows_the_card_on_screen_and_lists_requests_at_one_spot(browser, live_server, conn):
    from tests.conftest import screenshot
    spot = (42.33521, -71.04412)      # two tickets at one point, e.g. two callers about the same dog
    ids = {submit(conn, lat=spot[0], lon=spot[1])["public_id"] for _ in range(2)}
    context = browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(f"{live_server}/map#18/{spot[0]}/{spot[1]}")
        page.wait_for_selector("#map[data-ready=true]", timeout=30000)
        page.wait_for_function("window.publicMap.loaded() && window.publicMap.areTilesLoaded() && "
                               "window.publicMap.queryRenderedFeatures({layers: ['request-points']}).length > 0",
                               timeout=30000)
        x, y = page.evaluate(f"(() => {{ const p = window.publicMap.project([{spot[1]}, {spot[0]}]); "
                             "return [p.x, p.y]; })()")
        box = page.locator("#map canvas").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_selector("#card.sheet .pick-list", timeout=10000)
        listed = set(page.eval_on_selector_all("#card .pick-list button", "bs => bs.map(b => b.dataset.id)"))
        assert ids <= listed

        def on_screen():
            card = page.locator("#card").bounding_box()
            return card["y"] >= 0 and card["y"] + card["height"] <= 844 and card["height"] > 50
        assert on_screen()
        screenshot(page, "public-map-phone-list")
        first = sorted(ids)[0]
        page.click(f"#card .pick-list button[data-id='{first}']")
        page.wait_for_selector("#card .badge", timeout=10000)
        assert first in page.inner_text("#card") and on_screen()
        screenshot(page, "public-map-phone-card")
        page.click("#card .sheet-close")
        assert "sheet" not in page.get_attribute("#card", "class")
    finally:
        context.close()


@pytest.mark.parametrize("path", ["/map", "/report", "/requests", "/near"])
def test_public_pages_have_labels_for_every_field(client, path):
    page = client.get(path).get_data(as_text=True)
    ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page)
    hidden = set(re.findall(r'<input[^>]*type="hidden"[^>]*id="([^"]+)"', page)) | \
        set(re.findall(r'<input[^>]*id="([^"]+)"[^>]*type="hidden"', page))
    for field in set(ids) - hidden:
        assert f'for="{field}"' in page, f"{path}: #{field} has no label"
    assert 'lang="en"' in page


def test_resident_reports_in_chromium_with_questions_and_a_pin(page, live_server, conn):
    from tests.conftest import screenshot
    page.goto(f"{live_server}/report")
    page.select_option("#service_code", "animal-generic")
    page.wait_for_selector("#questions[data-service=animal-generic] select", timeout=10000)
    page.select_option("#questions select", "dog")
    page.wait_for_function("document.querySelector('#pin-map canvas') !== null", timeout=30000)
    page.wait_for_timeout(500)
    # keyboard: focus the map and press Enter to drop the pin at its centre
    page.focus("#pin-map")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('lat').value !== ''", timeout=10000)
    assert "Pin at" in page.inner_text("#pin-status")
    lat = float(page.input_value("#lat"))
    assert 42.2 < lat < 42.45
    page.fill("#description", "Dog without a collar")
    page.fill("#email", "browser.resident@example.org")
    screenshot(page, "public-report-form")
    page.click("#report-form button[type=submit]")
    page.wait_for_selector("#ticket-number", timeout=20000)
    number = page.inner_text("#ticket-number")
    row = conn.execute(text("SELECT channel, service_code FROM service_requests WHERE public_id = :p"),
                       {"p": number}).one()
    assert row.channel == "web" and row.service_code == "animal-generic"
    screenshot(page, "public-report-done")
    made = conn.execute(text("SELECT count(*) FROM service_requests")).scalar()
    page.reload()                          # Post/Redirect/Get: the thank-you page again, no second report
    assert page.inner_text("#ticket-number") == number
    page.go_back()                         # back to the form (refilled by the browser) and send it again
    page.wait_for_selector("#questions[data-service=animal-generic] select", timeout=10000)
    page.select_option("#questions select", "dog")
    page.click("#report-form button[type=submit]")
    page.wait_for_selector("#sent-before", timeout=20000)
    assert page.inner_text("#ticket-number") == number
    conn.rollback()
    assert conn.execute(text("SELECT count(*) FROM service_requests")).scalar() == made
