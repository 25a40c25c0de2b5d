"""Analyst dashboards: aggregates equal direct SQL counts; CSV/GeoJSON downloads; roles; no CDN."""
import csv
import io
import re
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import matplotlib.dates
import pytest
from sqlalchemy import text

from gis import analytics
from gis.db import city_timezone, city_today
from gis.analytics import Filters, parse_filters
from tests.conftest import login


def _sql(conn, sql, **params):
    return conn.execute(text(sql), params).all()


def test_over_time_sums_to_the_sql_count_per_category_and_range(conn):
    f = parse_filters({"start": "2015-01-01", "end": "2015-12-31"})
    rows = analytics.over_time(conn, f, "week")
    assert rows, "the demo city has requests in 2015"
    per_cat = {}
    for r in rows:
        per_cat[r["service_code"]] = per_cat.get(r["service_code"], 0) + r["requests"]
    want = dict(_sql(conn, "SELECT service_code, count(*) FROM service_requests WHERE requested_at >= '2015-01-01' "
                           "AND requested_at < '2016-01-01' GROUP BY 1"))
    assert per_cat == want
    # one week, one category, checked on its own
    r = max(rows, key=lambda r: r["requests"])
    n = conn.scalar(text("SELECT count(*) FROM service_requests WHERE service_code = :c AND "
                         "date_trunc('week', requested_at AT TIME ZONE :tz)::date = :p"),
                    {"c": r["service_code"], "p": r["period"], "tz": city_timezone()})
    assert n == r["requests"]


def test_days_are_the_citys_days_not_utcs(conn):
    # 9:30 pm on 1 March in Boston is already 2 March in UTC: the analyst's "1 March" must hold it,
    # in the date filter and in the daily bucket alike.
    assert city_timezone() == "America/New_York"
    with conn.begin() as tx:
        rid = conn.scalar(text("SELECT id FROM service_requests ORDER BY id LIMIT 1"))
        conn.execute(text("UPDATE service_requests SET requested_at = '2015-03-02 02:30:00+00' WHERE id = :i"),
                     {"i": rid})
        code = conn.scalar(text("SELECT service_code FROM service_requests WHERE id = :i"), {"i": rid})
        want = conn.scalar(text("SELECT count(*) FROM service_requests WHERE service_code = :c AND "
                                "requested_at >= '2015-03-01 05:00:00+00' AND requested_at < '2015-03-02 05:00:00+00'"),
                           {"c": code})
        f = parse_filters({"start": "2015-03-01", "end": "2015-03-01", "category": code})
        days = analytics.over_time(conn, f, "day")
        assert [(str(r["period"]), r["requests"]) for r in days] == [("2015-03-01", want)]
        tx.rollback()


def test_backlog_and_sla_by_ward_equal_sql(conn):
    rows = {r["code"]: r for r in analytics.by_district(conn, Filters(), "wards")}
    assert len(rows) == 22
    want = _sql(conn, """
        SELECT districts->'wards'->>'code', count(*) FILTER (WHERE status <> 'closed'),
               count(*) FILTER (WHERE status <> 'closed' AND expected_at < now()),
               count(*) FILTER (WHERE status = 'closed' AND closed_at <= expected_at),
               count(*) FILTER (WHERE status = 'closed' AND expected_at IS NOT NULL)
          FROM service_requests GROUP BY 1""")
    assert sum(w[1] for w in want) > 0
    for code, open_, overdue, met, closed in want:
        if code is None:
            continue
        r = rows[code]
        assert (r["open"], r["overdue"], r["met_sla"], r["closed_with_sla"]) == (open_, overdue, met, closed)
        if closed:
            # PostgreSQL's numeric round() goes half away from zero (74.25 -> 74.3); Python's float
            # round() would give 74.2, so compute the expectation in Decimal the same way.
            want_pct = (Decimal(100 * met) / Decimal(closed)).quantize(Decimal("0.1"), ROUND_HALF_UP)
            assert Decimal(str(r["sla_pct"])) == want_pct


def test_district_and_category_filters_narrow_the_counts(conn):
    code = conn.scalar(text("SELECT service_code FROM service_requests GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"))
    f = Filters(category=code, district_layer="police_districts", district="C6")
    rows = analytics.by_district(conn, f, "police_districts")
    total = conn.scalar(text("SELECT count(*) FROM service_requests WHERE service_code = :c "
                             "AND districts->'police_districts'->>'code' = 'C6'"), {"c": code})
    assert total > 0
    assert sum(r["requests"] for r in rows) == total
    assert [r["code"] for r in rows if r["requests"]] == ["C6"]


def test_hot_spot_cells_hold_exactly_their_points(conn):
    cells = analytics.hot_spots(conn, Filters(), 500)
    assert sum(c["requests"] for c in cells) == conn.scalar(text("SELECT count(*) FROM service_requests"))
    top = cells[0]
    inside = conn.scalar(text("""
        SELECT count(*) FROM service_requests
         WHERE ST_X(ST_Transform(geom, 3857)) >= :i * 500 AND ST_X(ST_Transform(geom, 3857)) < (:i + 1) * 500
           AND ST_Y(ST_Transform(geom, 3857)) >= :j * 500 AND ST_Y(ST_Transform(geom, 3857)) < (:j + 1) * 500"""),
                         {"i": top["i"], "j": top["j"]})
    assert inside == top["requests"] and top["requests"] >= cells[-1]["requests"]


def test_top_categories_per_neighbourhood_and_crew_workload_equal_sql(conn):
    top = analytics.top_categories(conn, Filters(), "neighborhoods", per_district=3)
    first = next(r for r in top if r["district"] == "south-boston" and r["rank"] == 1)
    want = _sql(conn, "SELECT service_code, count(*) FROM service_requests WHERE districts->'neighborhoods'->>'code' "
                      "= 'south-boston' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1")[0]
    assert (first["service_code"], first["requests"]) == tuple(want)
    crews = {r["code"]: r for r in analytics.crew_workload(conn, Filters())}
    want = _sql(conn, "SELECT c.code, count(*), count(*) FILTER (WHERE r.expected_at < now()) FROM service_requests r "
                      "JOIN crews c ON c.id = r.crew_id WHERE r.status <> 'closed' GROUP BY 1")
    assert {c: (o, d) for c, o, d in want} == {c: (r["open"], r["overdue"]) for c, r in crews.items()}


@pytest.mark.parametrize("args, field", [({"start": "yesterday"}, "start"),
                                         ({"start": "2020-02-01", "end": "2020-01-01"}, "end"),
                                         ({"district": "C6"}, "district_layer"),
                                         ({"district_layer": "x;drop"}, "district_layer")])
def test_bad_filters_are_typed_errors(args, field):
    with pytest.raises(analytics.InvalidInput) as err:
        parse_filters(args)
    assert err.value.field == field


@pytest.mark.parametrize("period, first", [("today", "2026-11-29"), ("this_week", "2026-11-23"),
                                           ("last_7_days", "2026-11-23"), ("this_month", "2026-11-01"),
                                           ("year_to_date", "2026-01-01")])
def test_named_periods_end_today_and_weeks_start_on_monday(period, first):
    sunday = date(2026, 11, 29)
    f = parse_filters({"period": period}, today=sunday)
    assert (str(f.start), str(f.end)) == (first, "2026-11-30")          # end is exclusive
    dates = parse_filters({"period": period, "start": "2015-01-01", "end": "2015-12-31"}, today=sunday)
    assert (str(dates.start), str(dates.end)) == ("2015-01-01", "2016-01-01")  # explicit dates win
    with pytest.raises(analytics.InvalidInput) as err:
        parse_filters({"period": "fortnight"}, today=sunday)
    assert err.value.field == "period"


def test_this_week_on_the_page_is_the_citys_week_with_its_requests(client, staff, conn):
    # "Requests by police district this week" (scenario 10): a request made now is in it, counted in
    # its police district, and the page says which days it shows.
    from gis import intake
    ticket = intake.submit_request(conn, intake.NewRequest(
        service_code="animal-generic", lat=42.3345, lon=-71.0398, attributes={"animal_type": "dog"},
        channel="api", actor="test"))
    conn.commit()
    monday = city_today() - timedelta(days=city_today().weekday())
    login(client, staff["analyst"])
    html = client.get("/dashboards/?period=this_week&layer=police_districts").get_data(as_text=True)
    assert f"from {monday.strftime('%a %d %b %Y')} to {city_today().strftime('%a %d %b %Y')}" in html
    assert 'href="/dashboards/?layer=police_districts&amp;period=this_week" aria-current="true"' in html
    assert '<input type="hidden" name="period" value="this_week">' in html     # "Apply" keeps the period
    rows = list(csv.DictReader(io.StringIO(client.get(
        "/dashboards/data/districts.csv?period=this_week&layer=police_districts").get_data(as_text=True))))
    want = dict(_sql(conn, "SELECT districts->'police_districts'->>'code', count(*) FROM service_requests "
                           "WHERE requested_at >= CAST(:m AS date) GROUP BY 1", m=monday))
    assert {r["code"]: int(r["requests"]) for r in rows if int(r["requests"])} == want
    assert want.get("C6", 0) >= 1 and ticket["districts"]["police_districts"]["code"] == "C6"


@pytest.mark.parametrize("role, status", [("analyst", 200), ("supervisor", 200), ("admin", 200),
                                          ("agent", 403), ("crew", 403)])
def test_only_analysts_and_supervisors_see_dashboards(client, staff, role, status):
    login(client, staff[role])
    for url in ("/dashboards/", "/dashboards/data/districts.csv", "/dashboards/chart/crews.svg",
                "/dashboards/data/hot_spots.geojson", "/dashboards/sweeps"):
        assert client.get(url).status_code == status, url


def test_anonymous_is_sent_to_sign_in(client):
    for url in ("/dashboards/", "/dashboards/data/districts.csv", "/dashboards/sweeps"):
        resp = client.get(url)
        assert resp.status_code in (302, 401) and "/login" in resp.headers.get("Location", "/login")


def test_csv_downloads_equal_the_aggregates(client, staff, conn):
    login(client, staff["analyst"])
    for name in ("over_time", "districts", "hot_spots", "top_categories", "crews"):
        resp = client.get(f"/dashboards/data/{name}.csv?layer=police_districts&start=2014-01-01&end=2016-12-31")
        assert resp.status_code == 200 and resp.mimetype == "text/csv", name
        rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
        assert rows, name
    rows = list(csv.DictReader(io.StringIO(client.get("/dashboards/data/districts.csv?layer=police_districts")
                                           .get_data(as_text=True))))
    want = dict(_sql(conn, "SELECT districts->'police_districts'->>'code', count(*) FILTER (WHERE status <> 'closed') "
                           "FROM service_requests WHERE districts ? 'police_districts' GROUP BY 1"))
    assert {r["code"]: int(r["open"]) for r in rows if int(r["open"])} == {k: v for k, v in want.items() if v}


def test_geojson_downloads_are_feature_collections(client, staff):
    login(client, staff["supervisor"])
    fc = client.get("/dashboards/data/districts.geojson?layer=wards").get_json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 22
    assert fc["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert {"code", "open", "overdue", "sla_pct"} <= set(fc["features"][0]["properties"])
    cells = client.get("/dashboards/data/hot_spots.geojson?cell=1000").get_json()["features"]
    assert cells and all(f["geometry"]["type"] == "Polygon" for f in cells)
    assert client.get("/dashboards/data/over_time.geojson").status_code == 404
    bad = client.get("/dashboards/data/districts.csv?layer=nope")
    assert bad.status_code == 400 and "district layer" in bad.get_data(as_text=True)
    assert client.get("/dashboards/data/hot_spots.csv?cell=1").status_code == 400


def test_page_has_charts_maps_downloads_and_nothing_from_elsewhere(client, staff):
    login(client, staff["analyst"])
    resp = client.get("/dashboards/?start=2015-01-01&end=2015-12-31&layer=police_districts")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    for name in ("over_time", "districts", "hot_spots", "crews", "top_categories"):
        assert f'id="chart-{name}"' in html and f"/dashboards/data/{name}.csv?" in html
    assert "/dashboards/data/districts.geojson?" in html and "/dashboards/data/hot_spots.geojson?" in html
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert ref.startswith(("/", "#")), ref
    svg = client.get("/dashboards/chart/over_time.svg?start=2015-01-01&end=2015-12-31")
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    bad = client.get("/dashboards/?start=nonsense")
    assert bad.status_code == 200 and "must be a date" in bad.get_data(as_text=True)


def test_a_year_of_data_answers_quickly(client, staff, conn):
    """Every dataset over the busiest year, through HTTP, inside a budget a Python loop over rows would miss."""
    import time
    year = int(conn.scalar(text("SELECT extract(year FROM requested_at) FROM service_requests GROUP BY 1 "
                                "ORDER BY count(*) DESC LIMIT 1")))
    login(client, staff["analyst"])
    qs = f"start={year}-01-01&end={year}-12-31"
    started = time.perf_counter()
    for name in ("over_time", "districts", "hot_spots", "top_categories", "crews"):
        assert client.get(f"/dashboards/data/{name}.csv?{qs}").status_code == 200
    for name in ("districts", "hot_spots"):
        assert client.get(f"/dashboards/data/{name}.geojson?{qs}").status_code == 200
    assert time.perf_counter() - started < 3.0


def test_folium_map_downloads_load_leaflet_from_this_server_only(client, staff):
    login(client, staff["analyst"])
    for name in ("districts", "hot_spots"):
        resp = client.get(f"/dashboards/map/{name}.html?layer=wards&start=2015-01-01&end=2015-12-31")
        assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
        html = resp.get_data(as_text=True)
        assert "http://localhost/static/vendor/leaflet/leaflet.js" in html and "L.geoJson" in html
        foreign = [u for u in re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
                   if not u.startswith("http://localhost/")]
        assert not foreign and "cdn" not in html.lower()
    assert client.get("/dashboards/map/crews.html").status_code == 404
    login(client, staff["agent"])
    assert client.get("/dashboards/map/districts.html").status_code == 403


def _labels(svg):
    """The texts of a matplotlib SVG (it draws text as paths and keeps each string in a comment)."""
    return re.findall(r"<!-- (.*?) -->", svg)


def test_over_time_has_every_period_of_the_range_zero_filled(conn):
    from matplotlib.figure import Figure
    from app.dashboards import service
    with conn.begin() as tx:   # two requests of one category, seven weeks apart, before the demo city's data
        code, a, b = conn.execute(text("SELECT service_code, min(id), max(id) FROM service_requests "
                                       "GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1")).one()
        for rid, when in ((a, "2014-01-15 17:00+00"), (b, "2014-03-05 17:00+00")):
            conn.execute(text("UPDATE service_requests SET requested_at = :w WHERE id = :i"), {"w": when, "i": rid})
        rows = analytics.over_time(conn, parse_filters({"start": "2014-01-01", "end": "2014-03-31",
                                                        "category": code}), "week")
        mondays = [date(2013, 12, 30) + timedelta(weeks=n) for n in range(14)]       # to 31 March, a Monday
        assert [r["period"] for r in rows] == mondays                                # no week left out
        assert {r["period"]: r["requests"] for r in rows if r["requests"]} == {date(2014, 1, 13): 1,
                                                                               date(2014, 3, 3): 1}
        # without dates: the data's first to last period, every one of them
        months = [r["period"] for r in analytics.over_time(conn, Filters(category=code), "month")]
        assert months[0] == date(2014, 1, 1) and len(months) == len(set(months))
        assert all((m2.year - m1.year) * 12 + m2.month - m1.month == 1 for m1, m2 in zip(months, months[1:]))
        fig = Figure()
        ax = fig.add_subplot()
        service._over_time(ax, rows)
        assert ax.get_ylim()[0] == 0                                                 # counts start at 0
        assert [d.date() for d in matplotlib.dates.num2date(ax.get_xlim())] == [mondays[0], mondays[-1]]
        tx.rollback()


def test_open_requests_without_an_sla_date_are_their_own_category(client, staff, conn):
    with conn.begin() as tx:
        conn.execute(text("UPDATE service_requests SET expected_at = NULL WHERE id IN (SELECT id FROM "
                          "service_requests WHERE status <> 'closed' AND expected_at IS NOT NULL "
                          "AND districts->'wards'->>'code' = '6' LIMIT 3)"))
        rows = {r["code"]: r for r in analytics.by_district(conn, Filters(), "wards")}
        want = dict(_sql(conn, "SELECT districts->'wards'->>'code', count(*) FROM service_requests "
                               "WHERE status <> 'closed' AND expected_at IS NULL GROUP BY 1"))
        assert want.get("6", 0) >= 3
        for code, r in rows.items():
            assert r["open_no_sla"] == want.get(code, 0)
            assert r["open_within_sla"] + r["overdue"] + r["open_no_sla"] == r["open"]
        crews = analytics.crew_workload(conn, Filters())
        assert all(c["open_within_sla"] + c["overdue"] + c["open_no_sla"] == c["open"] for c in crews)
        assert sum(c["open_no_sla"] for c in crews) == sum(want.values())
        tx.rollback()
    login(client, staff["analyst"])
    header = client.get("/dashboards/data/districts.csv?layer=wards").get_data(as_text=True).splitlines()[0]
    assert {"open_within_sla", "overdue", "open_no_sla"} <= set(header.split(","))
    for name in ("districts", "crews"):
        labels = _labels(client.get(f"/dashboards/chart/{name}.svg?layer=wards").get_data(as_text=True))
        assert {"open, within SLA", "open, no SLA date", "open, overdue"} <= set(labels), name
    assert "<th>No SLA date</th>" in client.get("/dashboards/?layer=wards").get_data(as_text=True)


@pytest.mark.parametrize("typed", ["A1", "A-1", "a1", "district a-1", "District A-1"])
def test_a_district_typed_as_people_write_it_finds_its_code(conn, typed):
    f = analytics.resolve(conn, parse_filters({"district_layer": "police_districts", "district": typed}))
    assert f.district == "A1"


@pytest.mark.parametrize("args, field, words", [
    ({"district_layer": "police_districts", "district": "Z9"}, "district", "District A-1"),
    ({"district_layer": "nope", "district": "A1"}, "district_layer", "no district layer"),
    ({"category": "nope"}, "category", "no category")])
def test_an_unknown_district_or_category_is_an_error_not_zeros(client, staff, conn, args, field, words):
    with pytest.raises(analytics.InvalidInput) as err:
        analytics.resolve(conn, parse_filters(args))
    assert err.value.field == field and words in err.value.message
    login(client, staff["analyst"])
    csv_res = client.get("/dashboards/data/districts.csv", query_string=args)
    assert csv_res.status_code == 400 and words in csv_res.get_data(as_text=True)
    page = client.get("/dashboards/", query_string=args).get_data(as_text=True)
    assert 'role="alert"' in page and words in page.replace("&#39;", "'")


def test_district_filter_is_a_list_of_the_layers_districts_in_natural_order(client, staff, conn):
    assert [r["code"] for r in analytics.by_district(conn, Filters(), "wards")] == [str(n) for n in range(1, 23)]
    assert analytics.natural_key("A7") < analytics.natural_key("A15") < analytics.natural_key("B2")
    login(client, staff["analyst"])
    html = client.get("/dashboards/?district_layer=police_districts&district=a-1&layer=police_districts"
                      ).get_data(as_text=True)
    assert '<select id="f-district" name="district">' in html
    wards = re.search(r'<optgroup label="wards" data-layer="wards">(.*?)</optgroup>', html, re.S).group(1)
    assert re.findall(r'<option value="([^"]+)"', wards) == [str(n) for n in range(1, 23)]
    assert '<option value="A1" selected>District A-1</option>' in html
    rows = list(csv.DictReader(io.StringIO(client.get(
        "/dashboards/data/districts.csv?layer=police_districts&district_layer=police_districts&district=A-1"
    ).get_data(as_text=True))))
    assert [r["code"] for r in rows if int(r["requests"])] == ["A1"]


def test_hot_spot_cells_are_labelled_by_neighbourhood_and_centre(client, staff, conn):
    cell = analytics.hot_spots(conn, Filters(), 500)[0]
    most = conn.scalar(text("""
        SELECT mode() WITHIN GROUP (ORDER BY districts->'neighborhoods'->>'name') FROM service_requests
         WHERE floor(ST_X(ST_Transform(geom, 3857)) / 500) = :i
           AND floor(ST_Y(ST_Transform(geom, 3857)) / 500) = :j"""), {"i": cell["i"], "j": cell["j"]})
    assert cell["neighbourhood"] == most
    inside = conn.scalar(text("SELECT ST_Contains(ST_Transform(ST_MakeEnvelope(:i * 500, :j * 500, (:i + 1) * 500, "
                              "(:j + 1) * 500, 3857), 4326), ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"),
                         {"i": cell["i"], "j": cell["j"], "lon": float(cell["lon"]), "lat": float(cell["lat"])})
    assert inside
    login(client, staff["analyst"])
    labels = _labels(client.get("/dashboards/chart/hot_spots.svg?cell=500").get_data(as_text=True))
    assert f"{cell['neighbourhood']} ({cell['lat']:.4f}, {cell['lon']:.4f})" in labels
    assert not [label for label in labels if label.startswith("cell ")]
