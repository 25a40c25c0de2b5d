"""Esri FeatureServer-compatible REST: layer JSON, a safe where, paging; GDAL ESRIJSON and the arcgis package."""
import datetime
import ipaddress
import json
import ssl
import subprocess
import threading

import pytest
from sqlalchemy import text

from tests.test_tiles import CONTACT, SOUTH_BOSTON, submit

Q = "/arcgis/rest/services/requests/FeatureServer/0/query"


def _count(conn, where="true", **params):
    return conn.execute(text(f"SELECT count(*) FROM public_requests WHERE {where}"), params).scalar()


def _q(client, **params):
    params.setdefault("f", "json")
    res = client.get(Q, query_string=params)
    assert res.status_code == 200
    return res.get_json()


def test_service_and_layer_json(client):
    svc = client.get("/arcgis/rest/services/requests/FeatureServer?f=json").get_json()
    assert svc["layers"][0]["id"] == 0 and svc["layers"][0]["geometryType"] == "esriGeometryPoint"
    layer = client.post("/arcgis/rest/services/requests/FeatureServer/0", data={"f": "json"}).get_json()
    assert layer["objectIdField"] == "objectid" and layer["geometryType"] == "esriGeometryPoint"
    assert layer["spatialReference"]["wkid"] == 4326 and layer["extent"]["xmin"] < SOUTH_BOSTON[1]
    types = {f["name"]: f["type"] for f in layer["fields"]}
    assert types["objectid"] == "esriFieldTypeOID" and types["requested_at"] == "esriFieldTypeDate"
    assert list(types.values()).count("esriFieldTypeOID") == 1
    assert not {"description", "phone", "email", "first_name"} & set(types)
    wards = client.get("/arcgis/rest/services/wards/FeatureServer/0?f=pjson").get_json()
    assert wards["geometryType"] == "esriGeometryPolygon"
    catalog = client.get("/arcgis/rest/services?f=json").get_json()
    assert {"requests", "wards", "parcels"} <= {s["name"] for s in catalog["services"]}


@pytest.mark.parametrize("where, sql", [
    ("1=1", "true"),
    ("status = 'open'", "status = 'open'"),
    ("status = 'open' AND service_code IN ('pothole', 'animal-generic')",
     "status = 'open' AND service_code IN ('pothole', 'animal-generic')"),
    ("(status <> 'closed' OR closure_reason = 'fixed') AND NOT wards = '6'",
     "(status <> 'closed' OR closure_reason = 'fixed') AND NOT districts->>'wards' = '6'"),
    ("service_name LIKE 'Street%'", "service_name LIKE 'Street%'"),
    ("UPPER(address) LIKE '%WASHINGTON%'", "upper(address) LIKE '%WASHINGTON%'"),
    ("closed_at IS NULL", "closed_at IS NULL"),
    ("closed_at IS NOT NULL AND requested_at >= DATE '2016-01-01'",
     "closed_at IS NOT NULL AND requested_at >= '2016-01-01 00:00+00'"),   # Esri dates are UTC
    ("objectid BETWEEN 10 AND 200", "objectid BETWEEN 10 AND 200"),
    ("coarsened = 1", "coarsened"),
    ("service_code = 'x'' OR ''1''=''1'", "false"),
])
def test_where_clauses_count_like_the_database(client, conn, where, sql):
    assert _q(client, where=where, returnCountOnly="true")["count"] == _count(conn, sql)


@pytest.mark.parametrize("where", [
    "1=1; DROP TABLE services", "status = 'open' --", "pg_sleep(5) > 0", "nope = 1", "status = open",
    "status = 'open' AND", "(status = 'open'", "objectid = 'abc'", "requested_at > DATE 'soon'", "'a' = 1",
    "status IN ()", "x" * 5000,
])
def test_hostile_or_broken_where_answers_an_arcgis_error(client, conn, where):
    before = conn.execute(text("SELECT count(*) FROM services")).scalar()
    body = _q(client, where=where)
    assert set(body) == {"error"} and body["error"]["code"] == 400 and body["error"]["message"]
    assert conn.execute(text("SELECT count(*) FROM services")).scalar() == before


def test_envelope_paging_ids_order_and_formats(client, conn):
    ticket = submit(conn)
    lat, lon = SOUTH_BOSTON
    env = {"xmin": lon - 0.003, "ymin": lat - 0.003, "xmax": lon + 0.003, "ymax": lat + 0.003,
           "spatialReference": {"wkid": 4326}}
    expected = _count(conn, "ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
                      a=env["xmin"], b=env["ymin"], c=env["xmax"], d=env["ymax"])
    spatial = dict(geometry=json.dumps(env), geometryType="esriGeometryEnvelope", spatialRel="esriSpatialRelIntersects")
    assert _q(client, returnCountOnly="true", **spatial)["count"] == expected > 3
    # the same envelope in Web Mercator, as ArcGIS Online sends it
    merc = client.get(Q, query_string={"f": "json", "returnCountOnly": "true", "inSR": "102100",
                                       "geometry": "-7908300,5210500,-7907600,5211400"}).get_json()
    assert merc["count"] == _count(conn, "ST_Intersects(geom, ST_Transform(ST_MakeEnvelope("
                                         "-7908300, 5210500, -7907600, 5211400, 3857), 4326))")
    ids = _q(client, returnIdsOnly="true", **spatial)["objectIds"]
    assert len(ids) == expected
    pages, offset = [], 0
    while True:
        page = _q(client, resultOffset=offset, resultRecordCount=2, orderByFields="requested_at DESC",
                  outFields="public_id,requested_at", **spatial)
        pages.extend(page["features"])
        offset += 2
        if not page.get("exceededTransferLimit"):
            break
    assert len(pages) == expected
    stamps = [f["attributes"]["requested_at"] for f in pages]
    assert stamps == sorted(stamps, reverse=True) and isinstance(stamps[0], int)
    assert ticket["public_id"] in {f["attributes"]["public_id"] for f in pages}
    assert set(pages[0]["attributes"]) == {"public_id", "requested_at"} and "x" in pages[0]["geometry"]
    picked = _q(client, objectIds=",".join(str(i) for i in ids[:3]), returnGeometry="false")
    assert sorted(f["attributes"]["objectid"] for f in picked["features"]) == sorted(ids[:3])
    assert "geometry" not in picked["features"][0]
    gj = _q(client, f="geojson", where=f"public_id = '{ticket['public_id']}'")
    assert gj["type"] == "FeatureCollection" and gj["features"][0]["geometry"]["type"] == "Point"
    posted = client.post(Q, data={"f": "json", "where": "status='open'", "returnCountOnly": "true"}).get_json()
    assert posted["count"] == _count(conn, "status = 'open'")
    assert "error" in _q(client, spatialRel="esriSpatialRelWithin",
                         **{k: v for k, v in spatial.items() if k != "spatialRel"})
    assert "error" in _q(client, outFields="public_id,phone")
    assert "error" in _q(client, orderByFields="status; drop")
    assert "error" in _q(client, f="kml")
    assert "error" in client.get("/arcgis/rest/services/nope/FeatureServer/0?f=json").get_json()


def test_gdal_esrijson_reads_and_pages_the_query(live_server, conn):
    url = (f"ESRIJSON:{live_server}{Q}?where=status%3D%27closed%27&outFields=*&f=json"
           "&resultRecordCount=1000&orderByFields=objectid")
    out = subprocess.run(["ogrinfo", "-ro", "-al", "-q", "-fields=NO", "-geom=NO", url], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("OGRFeature(") == _count(conn, "status = 'closed'") > 1000
    summary = subprocess.run(["ogrinfo", "-ro", "-so", "-al", f"ESRIJSON:{live_server}{Q}?where=1%3D1&outFields=*"
                              "&f=json&resultRecordCount=2000"], capture_output=True, text=True, timeout=120)
    assert "Geometry: Point" in summary.stdout and "service_code: String" in summary.stdout


# --- the arcgis package: HTTPS only, so the app is served over TLS with a throwaway certificate -------

def _self_signed(tmp):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    return str(tmp / "cert.pem"), str(tmp / "key.pem")


def _with_portal_stand_in(app):
    """`GIS(url)` first asks a portal who it is; ArcGIS Enterprise cannot be reached here, so these few
    documented anonymous answers stand in for it (see ../shared/notes/arcgis-portal-calls.md)."""
    def wsgi(environ, start):
        host = "https://" + environ["HTTP_HOST"]
        answers = {
            "/portal/sharing/rest/info": {"owningSystemUrl": host + "/portal", "authInfo": {
                "isTokenBasedSecurity": True, "tokenServicesUrl": host + "/portal/sharing/rest/generateToken"}},
            "/portal/sharing/rest/portals/self": {"portalName": "ArcGIS Enterprise", "portalMode": "singletenant",
                                                  "id": "org1", "isPortal": True, "currentVersion": "2024.1",
                                                  "helperServices": {}},
            "/portal/sharing/rest/": {"currentVersion": "2024.1"},
        }
        if environ["PATH_INFO"] in answers:
            start("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(answers[environ["PATH_INFO"]]).encode()]
        return app(environ, start)
    return wsgi


@pytest.fixture(scope="module")
def https_server(app, tmp_path_factory):
    from werkzeug.serving import make_server
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    server = make_server("127.0.0.1", 0, _with_portal_stand_in(app), threaded=True)
    # TLS handshakes in each connection's own thread: werkzeug's default does them in the accept loop,
    # and arcgis's five query threads (sharing one truststore context) can deadlock against that.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.ssl_context = context
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_arcgis_feature_layer_counts_equal_the_database(https_server, conn):
    from arcgis.features import FeatureLayer
    from arcgis.gis import GIS
    submit(conn)
    gis = GIS(f"{https_server}/portal", verify_cert=False)
    layer = FeatureLayer(f"{https_server}/arcgis/rest/services/requests/FeatureServer/0", gis=gis)
    assert layer.properties.objectIdField == "objectid"
    assert layer.query(where="1=1", return_count_only=True) == _count(conn)
    opened = layer.query(where="status = 'open' AND wards = '6'", out_fields="public_id,status,wards")
    assert len(opened.features) == _count(conn, "status = 'open' AND districts->>'wards' = '6'") > 0
    assert {f.attributes["wards"] for f in opened.features} == {"6"}
    everything = layer.query(where="1=1", out_fields="public_id", return_geometry=False)
    assert len({f.attributes["public_id"] for f in everything.features}) == _count(conn) > 2000
    blob = json.dumps([f.attributes for f in everything.features])
    for value in CONTACT.values():
        assert value not in blob
    wards = FeatureLayer(f"{https_server}/arcgis/rest/services/wards/FeatureServer/0", gis=gis)
    assert len(wards.query(where="1=1").features) == 22
    # statistics, as dashboards ask for them: open requests per ward
    per_ward = layer.query(where="status = 'open'", group_by_fields_for_statistics="wards", out_statistics=[
        {"statisticType": "count", "onStatisticField": "objectid", "outStatisticFieldName": "open_requests"}])
    assert {f.attributes["wards"]: f.attributes["open_requests"] for f in per_ward.features} == dict(
        conn.execute(text("SELECT districts->>'wards', count(*) FROM public_requests WHERE status = 'open' "
                          "GROUP BY 1")).all())


def test_dates_without_a_zone_are_utc_as_arcgis_and_ogc_clients_mean_them(client, conn):
    # The database session runs in the city's zone (Boston); an ArcGIS client's DATE '…' or TIMESTAMP '…'
    # and an OGC date are UTC. A day whose first hours (UTC) hold requests tells the two apart.
    day = conn.scalar(text("""
        SELECT (requested_at AT TIME ZONE 'UTC')::date FROM public_requests
         WHERE extract(hour FROM requested_at AT TIME ZONE 'UTC') < 4 ORDER BY requested_at LIMIT 1"""))
    assert day is not None, "the demo city has requests in the small hours (UTC)"
    utc = _count(conn, "requested_at >= CAST(:d AS timestamp) AT TIME ZONE 'UTC'", d=day)
    assert utc != _count(conn, "requested_at >= CAST(:d AS date)", d=day)     # the city's midnight differs
    assert _q(client, where=f"requested_at >= DATE '{day}'", returnCountOnly="true")["count"] == utc
    assert _q(client, where=f"requested_at >= TIMESTAMP '{day} 00:00:00'", returnCountOnly="true")["count"] == utc
    ogc = client.get(f"/ogc/collections/requests/items?datetime={day}/..&limit=1").get_json()
    assert ogc["numberMatched"] == utc
    one_day = client.get(f"/ogc/collections/requests/items?datetime={day}&limit=1").get_json()
    assert one_day["numberMatched"] == _count(
        conn, "requested_at >= CAST(:d AS timestamp) AT TIME ZONE 'UTC' AND "
              "requested_at < (CAST(:d AS timestamp) + interval '1 day') AT TIME ZONE 'UTC'", d=day)


def test_service_claims_only_the_formats_it_answers(client):
    svc = client.get("/arcgis/rest/services/requests/FeatureServer?f=json").get_json()
    layer = client.get("/arcgis/rest/services/requests/FeatureServer/0?f=json").get_json()
    for claimed in (svc["supportedQueryFormats"], layer["supportedQueryFormats"]):
        for fmt in (f.strip().lower() for f in claimed.split(",")):
            body = _q(client, f=fmt, where="1=1", resultRecordCount=1)
            assert "error" not in body, fmt


STATS = [{"statisticType": "count", "onStatisticField": "objectid", "outStatisticFieldName": "n"},
         {"statisticType": "sum", "onStatisticField": "objectid", "outStatisticFieldName": "total"},
         {"statisticType": "min", "onStatisticField": "requested_at", "outStatisticFieldName": "first"},
         {"statisticType": "max", "onStatisticField": "service_code", "outStatisticFieldName": "last_code"},
         {"statisticType": "avg", "onStatisticField": "OBJECTID", "outStatisticFieldName": "mean"}]


def test_out_statistics_grouped_equal_sql(client, conn):
    body = _q(client, where="status = 'open'", outStatistics=json.dumps(STATS),
              groupByFieldsForStatistics="police_districts", orderByFields="n DESC")
    assert "error" not in body, body
    assert {f["name"]: f["type"] for f in body["fields"]} == {
        "police_districts": "esriFieldTypeString", "n": "esriFieldTypeInteger", "total": "esriFieldTypeDouble",
        "first": "esriFieldTypeDate", "last_code": "esriFieldTypeString", "mean": "esriFieldTypeDouble"}
    want = conn.execute(text("""
        SELECT districts->>'police_districts', count(objectid), sum(objectid),
               floor(extract(epoch FROM min(requested_at)) * 1000)::bigint, max(service_code), avg(objectid)
          FROM public_requests WHERE status = 'open' GROUP BY 1 ORDER BY 2 DESC, 1""")).all()
    got = [tuple(f["attributes"].values()) for f in body["features"]]
    assert [g[:5] for g in got] == [tuple(w[:5]) for w in want] and len(got) > 5
    assert all(abs(g[5] - float(w[5])) < 1e-6 for g, w in zip(got, want))
    assert "geometry" not in body["features"][0]
    whole = _q(client, outStatistics=json.dumps(STATS[:1]))
    assert whole["features"] == [{"attributes": {"n": _count(conn)}}]
    star = _q(client, outStatistics='[{"statisticType": "count", "onStatisticField": "*"}]',
              groupByFieldsForStatistics="status", f="geojson")
    assert {f["properties"]["status"]: f["properties"]["count_all"] for f in star["features"]} == dict(
        conn.execute(text("SELECT status, count(*) FROM public_requests GROUP BY 1")).all())
    # paged like features: resultRecordCount with exceededTransferLimit, then the rest
    first = _q(client, outStatistics=json.dumps(STATS[:1]), groupByFieldsForStatistics="wards", resultRecordCount=5)
    rest = _q(client, outStatistics=json.dumps(STATS[:1]), groupByFieldsForStatistics="wards", resultOffset=5)
    assert first["exceededTransferLimit"] and len(first["features"]) == 5
    groups = conn.scalar(text("SELECT count(*) FROM (SELECT 1 FROM public_requests GROUP BY districts->>'wards') g"))
    assert len(first["features"]) + len(rest["features"]) == groups and not rest.get("exceededTransferLimit")


@pytest.mark.parametrize("stats, group, order", [
    ('[{"statisticType": "median", "onStatisticField": "objectid"}]', None, None),
    ('[{"statisticType": "sum", "onStatisticField": "status"}]', None, None),
    ('[{"statisticType": "count", "onStatisticField": "objectid) FROM services --"}]', None, None),
    ('[{"statisticType": "count", "onStatisticField": "objectid", "outStatisticFieldName": "n\\" FROM x"}]',
     None, None),
    ('[{"statisticType": "count", "onStatisticField": "phone"}]', None, None),
    ('{"statisticType": "count"}', None, None), ("not json", None, None),
    ('[{"statisticType": "count", "onStatisticField": "objectid"}]', "status; drop", None),
    ('[{"statisticType": "count", "onStatisticField": "objectid"}]', "status", "pg_sleep(5)"),
    (None, "status", None),
])
def test_bad_statistics_answer_an_arcgis_error(client, conn, stats, group, order):
    params = {k: v for k, v in (("outStatistics", stats), ("groupByFieldsForStatistics", group),
                                ("orderByFields", order)) if v is not None}
    before = conn.execute(text("SELECT count(*) FROM services")).scalar()
    body = _q(client, **params)
    assert set(body) == {"error"} and body["error"]["code"] == 400 and body["error"]["message"]
    assert conn.execute(text("SELECT count(*) FROM services")).scalar() == before
