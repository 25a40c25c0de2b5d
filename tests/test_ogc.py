"""OGC API – Features: GDAL's OAPIF driver and OWSLib read every feature; filters, paging, CSV."""
import csv
import io
import subprocess
import sys
import threading

import pytest
from owslib.ogcapi.features import Features
from sqlalchemy import text

from gis import features
from tests.test_tiles import CONTACT, SOUTH_BOSTON, submit


def _db_count(conn, sql="SELECT count(*) FROM public_requests", **params):
    return conn.execute(text(sql), params).scalar()


def test_landing_conformance_and_collections(client):
    landing = client.get("/ogc/").get_json()
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "conformance", "data"} <= rels
    conf = client.get("/ogc/conformance").get_json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf
    colls = {c["id"]: c for c in client.get("/ogc/collections").get_json()["collections"]}
    assert {"requests", "city_boundary", "wards", "precincts", "neighborhoods", "police_districts",
            "parcels"} <= set(colls)
    bbox = colls["requests"]["extent"]["spatial"]["bbox"][0]
    assert bbox[0] < SOUTH_BOSTON[1] < bbox[2] and bbox[1] < SOUTH_BOSTON[0] < bbox[3]
    assert client.get("/ogc/collections/nope").status_code == 404


def test_items_filters_paging_links_and_single_item(client, conn):
    ticket = submit(conn)
    page = client.get("/ogc/collections/requests/items?limit=5&offset=0&status=open")
    assert page.mimetype == "application/geo+json"
    body = page.get_json()
    assert body["numberMatched"] == _db_count(conn, "SELECT count(*) FROM public_requests WHERE status = 'open'")
    assert body["numberReturned"] == 5 and len(body["features"]) == 5
    assert all(f["properties"]["status"] == "open" for f in body["features"])
    links = {link["rel"]: link["href"] for link in body["links"]}
    assert "next" in links and "prev" not in links and "offset=5" in links["next"] and "status=open" in links["next"]
    second = client.get(links["next"].replace("http://localhost", "")).get_json()
    assert "prev" in {link["rel"] for link in second["links"]}
    assert not {f["id"] for f in second["features"]} & {f["id"] for f in body["features"]}

    lat, lon = SOUTH_BOSTON
    box = f"{lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}"
    near = client.get(f"/ogc/collections/requests/items?bbox={box}&limit=1000").get_json()
    assert ticket["public_id"] in {f["id"] for f in near["features"]}
    assert near["numberMatched"] == _db_count(
        conn, "SELECT count(*) FROM public_requests WHERE ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
        a=lon - 0.001, b=lat - 0.001, c=lon + 0.001, d=lat + 0.001)
    today = ticket["requested_at"].date().isoformat()
    dated = client.get(f"/ogc/collections/requests/items?datetime={today}/..&service_code=animal-generic").get_json()
    assert ticket["public_id"] in {f["id"] for f in dated["features"]}
    old = client.get("/ogc/collections/requests/items?datetime=../2001-01-01").get_json()
    assert old["numberMatched"] == 0

    one = client.get(f"/ogc/collections/requests/items/{ticket['public_id']}").get_json()
    assert one["properties"]["service_code"] == "animal-generic" and one["geometry"]["type"] == "Point"
    assert "description" not in one["properties"]
    ward = client.get("/ogc/collections/wards/items/6").get_json()
    assert ward["geometry"]["type"] == "MultiPolygon" and ward["properties"]["code"] == "6"
    assert client.get("/ogc/collections/requests/items/999999999999999").status_code == 404
    for bad in ("bbox=1,2,3", "bbox=a,b,c,d", "datetime=yesterday", "limit=-1", "objectid=abc"):
        res = client.get(f"/ogc/collections/requests/items?{bad}")
        assert res.status_code == 400 and res.is_json, bad


def test_csv_export_has_every_field_and_no_contact(client, conn):
    ticket = submit(conn)
    res = client.get("/ogc/collections/requests/items?f=csv&service_code=animal-generic&status=open")
    assert res.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(res.get_data(as_text=True))))
    mine = next(r for r in rows if r["public_id"] == ticket["public_id"])
    assert mine["wards"] == "6" and mine["police_districts"] == "C6" and float(mine["latitude"]) > 42
    blob = res.get_data(as_text=True)
    for value in CONTACT.values():
        assert value not in blob


def test_gdal_oapif_reads_every_feature(live_server, conn):
    submit(conn)
    url = f"OAPIF:{live_server}/ogc"
    summary = subprocess.run(["ogrinfo", "-ro", "-so", "-al", url], capture_output=True, text=True, timeout=300)
    assert summary.returncode == 0, summary.stderr
    for layer in ("requests", "wards", "police_districts", "parcels"):
        assert f"Layer name: {layer}" in summary.stdout
    for layer, sql in (("requests", "SELECT count(*) FROM public_requests"),
                       ("wards", "SELECT count(*) FROM districts d JOIN layers l ON l.id = d.layer_id "
                                 "WHERE l.name = 'wards'")):
        full = subprocess.run(["ogrinfo", "-ro", "-q", "-oo", "PAGE_SIZE=5000", "-fields=NO", "-geom=NO", url, layer],
                              capture_output=True, text=True, timeout=300)
        assert full.returncode == 0, full.stderr
        assert full.stdout.count(f"OGRFeature({layer})") == _db_count(conn, sql) > 0


def test_owslib_pages_through_everything(live_server, conn):
    api = Features(f"{live_server}/ogc")
    assert "requests" in {c["id"] for c in api.collections()["collections"]}
    seen, offset = set(), 0
    while True:
        page = api.collection_items("requests", limit=5000, offset=offset)
        if not page["features"]:
            break
        seen.update(f["id"] for f in page["features"])
        offset += page["numberReturned"]
        if not any(link["rel"] == "next" for link in page["links"]):
            break
    assert len(seen) == _db_count(conn) == page["numberMatched"]
    wards = api.collection_items("wards", limit=100)
    assert wards["numberMatched"] == len(wards["features"]) == 22


def test_csv_export_streams_every_matching_row_unless_limited(client, conn):
    total = _db_count(conn)
    assert total > features.MAX_LIMIT, "the demo city has more requests than one page holds"
    res = client.get("/ogc/collections/requests/items?f=csv")
    assert res.status_code == 200 and res.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(res.get_data(as_text=True))))
    assert len(rows) == total and len({r["public_id"] for r in rows}) == total
    opened = list(csv.DictReader(io.StringIO(client.get(
        "/ogc/collections/requests/items?f=csv&status=open&properties=public_id,status").get_data(as_text=True))))
    assert len(opened) == _db_count(conn, "SELECT count(*) FROM public_requests WHERE status = 'open'") > 0
    assert set(opened[0]) == {"public_id", "status", "longitude", "latitude"}
    assert {r["status"] for r in opened} == {"open"}
    page = client.get("/ogc/collections/requests/items?f=csv&limit=7&offset=3").get_data(as_text=True)
    assert [r["public_id"] for r in csv.DictReader(io.StringIO(page))] == [r["public_id"] for r in rows[3:10]]


def test_unknown_parameters_are_refused_not_ignored(client, conn):
    for bad in ("stauts=open", "ward=6", "crs=EPSG:3857", "bbox-crs=EPSG:4326", "properties=public_id,phone"):
        res = client.get(f"/ogc/collections/requests/items?{bad}&f=csv")
        assert res.status_code == 400 and res.is_json, bad
        assert client.get(f"/ogc/collections/requests/items?{bad}").status_code == 400, bad
    crs84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    body = client.get("/ogc/collections/requests/items", query_string={
        "crs": crs84, "bbox-crs": crs84, "properties": "status", "wards": "6", "limit": 3}).get_json()
    assert body["numberMatched"] == _db_count(conn, "SELECT count(*) FROM public_requests "
                                                    "WHERE districts->>'wards' = '6'")
    assert all(set(f["properties"]) == {"status"} for f in body["features"])


@pytest.fixture(scope="module")
def counted_server(app):
    """The app over real HTTP in this process, recording every request's path and query; clients run
    in a subprocess (GDAL holds the GIL in pyogrio's read loop, which would starve a server thread)."""
    from werkzeug.serving import make_server
    seen = []

    def wsgi(environ, start):
        seen.append(environ["PATH_INFO"] + "?" + environ.get("QUERY_STRING", ""))
        return app(environ, start)
    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


def _limit_of(doc, path):
    """The items `limit` parameter as GDAL finds it: the collection's own path, a local $ref naming limit."""
    for param in doc["paths"][path]["get"]["parameters"]:
        ref = param.get("$ref", "")
        if "limit" in ref:
            node = doc
            for part in ref.lstrip("#/").split("/"):
                node = node[part]
            return node["schema"]


def test_api_document_lets_gdal_filter_on_the_server_and_page_large(counted_server, conn):
    url, seen = counted_server
    where = "status='open' AND wards='6'"
    want = _db_count(conn, "SELECT count(*) FROM public_requests WHERE status = 'open' AND districts->>'wards' = '6'")
    # GDAL 3.6 (ogrinfo): the API document lists each collection's properties, so the filter is sent to
    # the server (a few pages) instead of every request being fetched, ten at a time, and filtered locally.
    seen.clear()
    out = subprocess.run(["ogrinfo", "-ro", "-q", "-fields=NO", "-geom=NO", "-where", where, f"OAPIF:{url}/ogc",
                          "requests"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("OGRFeature(requests)") == want > 0
    items = [s for s in seen if s.startswith("/ogc/collections/requests/items?")]
    assert "/ogc/api?" in seen and all("status=open" in s and "wards=6" in s for s in items[1:])
    assert len(items) <= want // 10 + 3
    # Newer GDAL (pyogrio's) takes its page size from the limit's default and maximum: 1,000 a page.
    seen.clear()
    code = "import pyogrio, sys; print(len(pyogrio.raw.read(sys.argv[1], layer='requests')[2]))"
    out = subprocess.run([sys.executable, "-c", code, f"OAPIF:{url}/ogc"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == _db_count(conn)
    items = [s for s in seen if s.startswith("/ogc/collections/requests/items?")]
    assert len(items) <= _db_count(conn) // 1000 + 3          # a schema probe, then pages of 1,000


def test_owslib_reads_the_api_definition_and_queryables(live_server):
    api = Features(f"{live_server}/ogc")
    doc = api.api()
    assert doc["openapi"].startswith("3.0")
    assert _limit_of(doc, "/collections/requests/items") == {"type": "integer", "minimum": 1,
                                                             "maximum": features.MAX_LIMIT, "default": 100}
    assert "/collections/wards/items/{featureId}" in doc["paths"]
    queryables = api.collection_queryables("requests")
    assert queryables["type"] == "object" and queryables["properties"]["status"]["type"] == "string"
    assert queryables["properties"]["requested_at"]["format"] == "date-time"
    assert "phone" not in queryables["properties"]
    conf = api.conformance()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30" in conf
    links = {link["rel"]: link for link in api.collection("requests")["links"]}
    assert links["http://www.opengis.net/def/rel/ogc/1.0/queryables"]["type"] == "application/schema+json"


def test_times_read_in_pyogrio_whatever_their_fraction_of_a_second(conn, counted_server):
    """GDAL keeps a time's seconds as a float and pyogrio rounds them to the millisecond: a request made at
    hh:mm:13.9996 became microsecond 1,000,000 and the analyst's whole read failed ("microsecond must be
    in 0..999999"). The API gives times to the millisecond, which every client reads."""
    url, _ = counted_server
    row = conn.execute(text("SELECT r.id, r.public_id, r.requested_at FROM service_requests r "
                            "JOIN public_requests p USING (public_id) ORDER BY r.id LIMIT 1")).one()
    conn.execute(text("UPDATE service_requests SET requested_at = '2026-03-01 12:00:13.9996+00' WHERE id = :i"),
                 {"i": row.id})
    conn.commit()
    try:
        code = ("import pyogrio, sys; t = pyogrio.raw.read(sys.argv[1], layer='requests', "
                "where=sys.argv[2], columns=['public_id', 'requested_at']); print(t[3][1][0])")
        out = subprocess.run([sys.executable, "-c", code, f"OAPIF:{url}/ogc", f"public_id = '{row.public_id}'"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("2026-03-01T") and ":00:13.999" in out.stdout, out.stdout   # city time
    finally:
        conn.execute(text("UPDATE service_requests SET requested_at = :t WHERE id = :i"),
                     {"t": row.requested_at, "i": row.id})
        conn.commit()
