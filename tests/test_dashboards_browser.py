"""Dashboards and sweeps in Debian's chromium: charts and maps render under the real CSP, nothing loads
from another origin, no script error; an area drawn with clicks previews exactly the open requests inside."""
import json
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from gis import sweeps
from tests.conftest import browser_login, screenshot
from tests.test_sweeps import _box, _request, quiet_spot  # noqa: F401  (fixture)


@pytest.fixture
def watched(browser, live_server):
    """A page that records script errors, CSP refusals and any request to another origin."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    # a refused resource is reported below with its URL (a missing /favicon.ico is not ours to mind)
    page.on("console", lambda msg: msg.type == "error" and "Failed to load resource" not in msg.text
            and problems.append(f"console: {msg.text}"))
    page.on("response", lambda resp: resp.status >= 400 and not resp.url.endswith("/favicon.ico")
            and problems.append(f"HTTP {resp.status}: {resp.url}"))
    page.on("request", lambda req: req.url.startswith((live_server, "data:", "blob:", "file:")) or
            problems.append(f"foreign request: {req.url}"))
    yield page, problems
    context.close()


def test_dashboard_renders_charts_and_maps(watched, live_server, staff):
    page, problems = watched
    browser_login(page, live_server, staff["analyst"])
    page.goto(f"{live_server}/dashboards/?layer=wards")
    page.wait_for_selector("#map-districts[data-state=loaded]", timeout=30000)
    page.wait_for_selector("#map-hot_spots[data-state=loaded]", timeout=30000)
    assert page.get_attribute("#map-districts", "data-features") == "22"
    assert int(page.get_attribute("#map-hot_spots", "data-features")) > 10
    for name in ("over_time", "districts", "hot_spots", "crews", "top_categories"):
        img = page.locator(f"#chart-{name}")
        img.scroll_into_view_if_needed()
        page.wait_for_function("el => el.complete && el.naturalWidth > 100", arg=img.element_handle(), timeout=30000)
        assert img.is_visible()
    for canvas in page.locator(".map canvas.maplibregl-canvas").all():
        box = canvas.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 200
    page.locator("#map-districts").scroll_into_view_if_needed()
    screenshot(page, "dashboards")
    assert page.locator("#district-table tbody tr").count() == 22
    assert not problems, problems


def test_area_drawn_with_clicks_previews_the_open_requests_inside(watched, live_server, staff, conn):
    page, problems = watched
    browser_login(page, live_server, staff["supervisor"])
    page.goto(f"{live_server}/dashboards/sweeps")
    page.wait_for_selector("#sweep-map canvas.maplibregl-canvas")
    page.wait_for_timeout(800)
    box = page.locator("#sweep-map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for dx, dy in ((-120, -90), (130, -80), (110, 100), (-100, 120)):
        page.mouse.click(cx + dx, cy + dy)
        page.wait_for_timeout(150)
    with page.expect_response("**/dashboards/sweeps/preview") as resp_info:
        page.click("#finish-area")
    sent = json.loads(resp_info.value.request.post_data)
    assert sent["area"]["type"] == "Polygon" and len(sent["area"]["coordinates"][0]) == 5
    found = resp_info.value.json()
    want = conn.scalar(text("SELECT count(*) FROM service_requests WHERE status <> 'closed' AND "
                            "ST_Intersects(geom, ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326))"),
                       {"g": json.dumps(sent["area"])})
    assert found["total"] == want > 0
    page.wait_for_function(f"document.querySelector('#preview-summary').textContent.startsWith('{want} open')")
    assert page.locator("#preview-categories tr").count() == len(found["categories"])
    assert page.locator(".sweep-category:checked").count() == len(found["categories"])   # all ticked at first
    assert page.is_enabled("#create-sweep")
    screenshot(page, "sweep-drawn")
    assert not problems, problems


def test_sweep_progress_page_shows_its_area_and_count(watched, live_server, staff, conn, quiet_spot):  # noqa: F811
    lat, lon = quiet_spot
    for dlat in (0, 0.0001):
        _request(conn, lat + dlat, lon)
    sweep_id = sweeps.create(conn, "Browser sweep", sweeps.area_sql(conn, polygon=_box(lat, lon)), "sweep-crew-1",
                             date.today() + timedelta(days=3), "analyst:test-analyst")
    try:
        page, problems = watched
        browser_login(page, live_server, staff["analyst"])
        page.goto(f"{live_server}/dashboards/sweeps/{sweep_id}")
        page.wait_for_selector("#sweep-map canvas.maplibregl-canvas")
        assert "0 of 2" in page.inner_text("#sweep-progress")
        assert page.locator("#sweep-requests tr").count() == 2
        page.wait_for_timeout(500)
        screenshot(page, "sweep-progress")
        assert not problems, problems
    finally:
        conn.rollback()
        conn.execute(text("DELETE FROM sweeps WHERE id = :s"), {"s": sweep_id})
        conn.commit()


def test_downloaded_folium_map_renders_the_wards(watched, live_server, staff, tmp_path):
    page, problems = watched
    browser_login(page, live_server, staff["analyst"])
    html = page.request.get(f"{live_server}/dashboards/map/districts.html?layer=wards").text()
    saved = tmp_path / "districts.html"
    saved.write_text(html)
    page.goto(saved.as_uri())
    page.wait_for_selector("path.leaflet-interactive")
    assert page.locator("path.leaflet-interactive").count() == 22
    screenshot(page, "dashboards-folium-wards")
    assert not problems, problems


def test_district_list_offers_the_chosen_layers_districts(watched, live_server, staff):
    page, problems = watched
    browser_login(page, live_server, staff["analyst"])
    page.goto(f"{live_server}/dashboards/?layer=police_districts")
    page.select_option("#f-district", label="District A-1")          # picked first: its layer comes along
    assert page.input_value("#f-dlayer") == "police_districts"
    assert page.locator('#f-district optgroup[data-layer="wards"]').evaluate("g => g.disabled && g.hidden")
    page.select_option("#f-dlayer", "wards")                           # another layer: A-1 is not a ward
    assert page.input_value("#f-district") == ""
    assert page.locator('#f-district optgroup[data-layer="police_districts"]').evaluate("g => g.disabled")
    page.select_option("#f-district", label="Ward 6")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("#district-table")
    assert "district_layer=wards" in page.url and "district=6" in page.url
    assert page.locator("#f-district option:checked").inner_text() == "Ward 6"
    assert not problems, problems
