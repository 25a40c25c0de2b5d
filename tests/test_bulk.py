"""Historical load (gis.bulk): real Boston files in both formats, set-based districts and crews that agree
with the live (SQL) path, de-duplication, refusals with reasons, all-or-nothing."""
import gzip
import json

import numpy as np
import pytest
from sqlalchemy import text

from gis import bulk
from gis.errors import InvalidInput
from gis.locate import locate_point, route_preview
from tests.conftest import SHARED, needs_shared

CASES = SHARED / "311_cases_2015_by_type"
OPEN311 = SHARED / "open311_georeport_v2"


def _new_requests(conn, since):
    return conn.execute(text("SELECT id, public_id, service_code, status, districts, crew_id, routed_by, parcel_id, "
                             "ST_Y(geom) AS lat, ST_X(geom) AS lon, closed_at, requested_at FROM service_requests "
                             "WHERE id > :m ORDER BY id"), {"m": since}).all()


def _import_records(engine, path, records):
    """Write Open311 records as a gzipped JSON-lines file and import it."""
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in records))
    return bulk.import_requests(engine, path, "open311-json", progress=False)


def _mark(conn):
    return conn.scalar(text("SELECT coalesce(max(id), 0) FROM service_requests"))


@needs_shared()
def test_boston_csv_loads_with_the_same_districts_and_crews_as_live_intake(engine, conn):
    mark = _mark(conn)
    path = CASES / "Animal Generic Request.csv"
    report = bulk.import_requests(engine, path, "boston-csv", progress=False)
    print("\n" + report.summary())
    assert report.read == 2589
    present_before = report.already_present   # the demo city already holds a sample of 2015 cases
    assert report.loaded + present_before + report.duplicates + sum(
        n for r, n in report.refused.items() if not r.startswith(" ")) == report.read
    assert report.loaded > 1500
    rows = _new_requests(conn, mark)
    assert len(rows) == report.loaded
    assert {r.service_code for r in rows} == {"animal-generic"}
    events = conn.execute(text("SELECT kind, count(*) FROM request_events WHERE request_id > :m GROUP BY kind"),
                          {"m": mark}).all()
    closed = sum(r.status == "closed" for r in rows)
    assert dict(events) == {"created": len(rows), "closed": closed} if closed else {"created": len(rows)}
    assert all((r.status == "closed") == (r.closed_at is not None) for r in rows)
    # Same answer as the one-point SQL path, district by district and crew by crew.
    rng = np.random.default_rng(5)
    crews = dict(conn.execute(text("SELECT code, id FROM crews")).all())
    for k in rng.choice(len(rows), size=120, replace=False):
        r = rows[k]
        where = locate_point(conn, r.lat, r.lon)
        assert ({layer: d["code"] for layer, d in where.districts.items()}
                == {layer: d["code"] for layer, d in r.districts.items()})
        assert where.parcel_id == r.parcel_id
        live = route_preview(conn, r.lat, r.lon, "animal-generic")[0]
        assert crews.get((live["crew"] or {}).get("code")) == r.crew_id, (r.public_id, live, r.routed_by)
        assert live["routed_by"] == r.routed_by
    # A second run adds nothing.
    again = bulk.import_requests(engine, path, "boston-csv", progress=False)
    assert again.loaded == 0 and again.already_present == report.loaded + present_before


@needs_shared()
def test_open311_json_lines_with_a_service_and_duplicates(engine, conn):
    mark = _mark(conn)
    path = OPEN311 / "abandoned_vehicle.jsonl.gz"
    report = bulk.import_requests(engine, path, "open311-json", service_code="abandoned-vehicle", progress=False)
    print("\n" + report.summary())
    assert report.read == 29_606
    assert report.duplicates == 29_606 - 29_556 + sum(0 for _ in ())   # ids repeated across pages
    assert report.refused["outside the city boundary"] > 0              # the file's bad geocodes
    assert report.loaded > 29_000
    rows = _new_requests(conn, mark)
    assert len(rows) == report.loaded and len({r.public_id for r in rows}) == len(rows)
    assert all(r.routed_by for r in rows)


def test_refusals_are_counted_with_their_reasons(engine, conn, tmp_path):
    mark = _mark(conn)
    good = {"service_request_id": "T-1", "service_name": "Pick up Dead Animal", "status": "open",
            "requested_datetime": "2019-03-01T10:00:00-05:00", "lat": 42.3345, "long": -71.0398,
            "description": "Robert'); DROP TABLE service_requests;-- <script>x</script>\ttab\\back\nline",
            "address": "615 E Fourth St"}
    records = [
        good,
        {**good, "service_request_id": "T-1"},                                   # repeated id
        {**good, "service_request_id": "T-2", "service_name": "Unicorn Sighting"},
        {**good, "service_request_id": "T-3", "lat": None},
        {**good, "service_request_id": "T-4", "lat": 40.7128, "long": -74.0060},
        {**good, "service_request_id": "T-5", "requested_datetime": "yesterday"},
        {**good, "service_request_id": "bad id; DROP"},
        {**good, "service_request_id": "T-6", "status": "closed", "status_notes": "Case resolved",
         "updated_datetime": "2019-03-02T10:00:00-05:00"},
    ]
    report = _import_records(engine, tmp_path / "mixed.jsonl.gz", records)
    assert report.loaded == 2 and report.duplicates == 1
    assert report.refused["unknown service"] == 1
    assert report.unknown_services == {"Unicorn Sighting": 1}
    assert "'Unicorn Sighting' (1)" in report.summary() and "--service CODE" in report.summary()
    assert report.refused["no coordinates"] == 1
    assert report.refused["outside the city boundary"] == 1
    assert report.refused["no or unreadable request date"] == 1
    assert report.refused["missing or malformed id"] == 1
    rows = {r.public_id: r for r in _new_requests(conn, mark)}
    assert set(rows) == {"T-1", "T-6"}
    assert rows["T-6"].status == "closed" and rows["T-1"].districts["police_districts"]["code"] == "C6"
    stored = conn.scalar(text("SELECT description FROM service_requests WHERE public_id = 'T-1'"))
    assert stored == good["description"]


def test_files_that_are_not_what_they_claim_change_nothing(engine, conn, tmp_path):
    before = _mark(conn)
    csv_path = tmp_path / "other.csv"
    csv_path.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInput, match="not a Boston 311 CSV"):
        bulk.import_requests(engine, csv_path, "boston-csv", progress=False)
    json_path = tmp_path / "other.jsonl"
    json_path.write_text('{"x": 1}\n')
    with pytest.raises(InvalidInput, match="Open311"):
        bulk.import_requests(engine, json_path, "open311-json", progress=False)
    json_path.write_text("this is not json\n")
    with pytest.raises(InvalidInput):
        bulk.import_requests(engine, json_path, "open311-json", progress=False)
    with pytest.raises(InvalidInput, match="unknown service"):
        bulk.import_requests(engine, CASES / "Animal Found.csv" if CASES.exists() else csv_path, "boston-csv",
                             service_code="no-such-service", progress=False)
    assert _mark(conn) == before


def test_bulk_public_point_and_cache_version_match_live_intake(engine, conn, tmp_path):
    """Bulk loads skip the per-row public-point, data-version and notify triggers (migration 0011) and do
    that work set-based: the public point must be exactly intake's, for a sensitive (snapped) and a
    non-sensitive service, the tile cache version must move once, and the live consoles get one resync, not
    a message per row."""
    from gis import intake
    from gis.live import ChangeFeed
    from gis.public import data_version

    lat, lon = 42.33457, -71.03981
    cases = {"bed-bugs": True, "abandoned-vehicle": False}   # code: sensitive
    assert dict(conn.execute(text("SELECT code, sensitive FROM services WHERE code IN ('bed-bugs', "
                                  "'abandoned-vehicle')")).all()) == cases
    live = {code: intake.submit_request(conn, intake.NewRequest(service_code=code, lat=lat, lon=lon,
                                                                channel="agent", actor="agent:test"))
            for code in cases}
    records = [{"service_request_id": f"PG-{code}", "service_code": code, "status": "open",
                "requested_datetime": "2019-03-01T10:00:00-05:00", "lat": lat, "long": lon}
               for code in cases]
    path = tmp_path / "public-point.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))

    feed = ChangeFeed()
    feed.look(conn)                                             # the live consoles' place before the load
    before = data_version(conn, "requests")
    report = bulk.import_requests(engine, path, "open311-json", progress=False)
    assert report.loaded == 2
    assert data_version(conn, "requests") == before + 1     # once for the load, at its commit
    conn.commit()
    # the consoles are told to reload once, and get nothing per row
    assert feed.look(conn) == [{"op": "resync"}]

    for code, sensitive in cases.items():
        pair = conn.execute(text("""
            SELECT ST_AsEWKT(b.public_geom) AS bulk, ST_AsEWKT(l.public_geom) AS live,
                   ST_Equals(b.public_geom, b.geom) AS exact, ST_AsEWKT(p.geom) AS published
              FROM service_requests b, service_requests l, public_requests p
             WHERE b.public_id = :bulk AND l.public_id = :live AND p.public_id = :bulk"""),
                            {"bulk": f"PG-{code}", "live": live[code]["public_id"]}).one()
        assert pair.bulk is not None and pair.bulk == pair.live == pair.published, (code, pair)
        assert pair.exact is not sensitive, (code, pair)      # snapped to the 250 m grid when sensitive

    # Outside a bulk load the triggers still do it all: a plain INSERT under the flag but without a
    # public point still gets one, and an UPDATE of geom still recomputes it.
    with engine.begin() as c:
        c.execute(text("SET LOCAL pin311.bulk = 'on'"))
        c.execute(text("INSERT INTO service_requests (public_id, service_code, geom, channel) "
                       "VALUES ('PG-raw', 'bed-bugs', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'import')"),
                  {"lat": lat, "lon": lon})
    plain = conn.execute(text("SELECT ST_AsEWKT(public_geom) FROM service_requests WHERE public_id = 'PG-raw'"))
    snapped = conn.execute(text("SELECT ST_AsEWKT(public_geom) FROM service_requests WHERE public_id = :p"),
                           {"p": live["bed-bugs"]["public_id"]}).scalar_one()
    assert plain.scalar_one() == snapped
    versions = data_version(conn, "requests")
    conn.commit()
    with engine.begin() as c:
        c.execute(text("UPDATE service_requests SET geom = ST_SetSRID(ST_MakePoint(-71.0589, 42.3601), 4326) "
                       "WHERE public_id = 'PG-abandoned-vehicle'"))
    moved = conn.execute(text("SELECT ST_Equals(public_geom, geom), ST_X(public_geom) FROM service_requests "
                              "WHERE public_id = 'PG-abandoned-vehicle'")).one()
    assert moved[0] and round(moved[1], 4) == -71.0589
    assert data_version(conn, "requests") == versions + 1


def test_rows_on_the_city_hall_placeholder_are_placed_by_their_address_or_refused(engine, conn, tmp_path):
    """Boston files a request it could not place on City Hall (42.3594, -71.0587): loaded as is, they made a
    fake hot spot in ward 3 / district A1. They are placed by their address, or refused with the reason."""
    mark = _mark(conn)
    hall = {"service_name": "Pick up Dead Animal", "status": "open", "requested_datetime": "2019-03-01T10:00:00-05:00",
            "lat": 42.3594, "long": -71.0587}
    records = [{**hall, "service_request_id": "P-1", "address": "615 E Fourth St, South Boston"},
               {**hall, "service_request_id": "P-2", "address": "somewhere we never heard of"},
               {**hall, "service_request_id": "P-3", "lat": 42.35941, "long": -71.05874, "address": ""}]
    report = _import_records(engine, tmp_path / "placeholder.jsonl.gz", records)
    assert report.loaded == 1 and report.placed_by_address == 1
    assert report.refused["on the City Hall placeholder point, and no address the gazetteer knows"] == 2
    assert "placed by their address" in report.summary()
    (row,) = _new_requests(conn, mark)
    assert row.public_id == "P-1" and row.districts["police_districts"]["code"] == "C6"
    assert abs(row.lat - 42.3345) < 0.001 and abs(row.lon + 71.0398) < 0.001
