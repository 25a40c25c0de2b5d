"""Vector tiles: the right features, decoded by mapbox-vector-tile and GDAL; caching and privacy."""
import math
import subprocess
import time

import mapbox_vector_tile
from sqlalchemy import text

from gis import intake

SOUTH_BOSTON = (42.3345, -71.0398)      # 615 E Fourth St: ward 6, police C6
CONTACT = {"first_name": "Zebulon", "last_name": "Quixotesque", "phone": "+1 617 555 0199",
           "email": "zebulon.q@example.org"}


def tile_of(lat, lon, z):
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def submit(conn, service="animal-generic", lat=SOUTH_BOSTON[0], lon=SOUTH_BOSTON[1], **kw):
    attrs = {"animal-generic": {"animal_type": "dog"}}.get(service, {})
    base = dict(service_code=service, lat=lat, lon=lon, attributes=attrs, description="Stray dog near the park",
                channel="agent", actor="agent:test", contact=dict(CONTACT))
    base.update(kw)
    return intake.submit_request(conn, intake.NewRequest(**base))


def decode(data):
    return mapbox_vector_tile.decode(data)


def public_ids(tile):
    return {f["properties"].get("public_id") for f in tile.get("requests", {}).get("features", [])}


def fresh_version(app):
    """Tiles re-read the data version at most every TILE_VERSION_TTL seconds; wait that out."""
    time.sleep(app.config.get("TILE_VERSION_TTL", 1.0) + 0.1)


def test_a_new_request_appears_in_its_z16_tile_without_personal_data(client, conn, app):
    ticket = submit(conn)
    fresh_version(app)
    z, x, y = tile_of(*SOUTH_BOSTON, 16)
    res = client.get(f"/tiles/requests/{z}/{x}/{y}.mvt")
    assert res.status_code == 200 and res.mimetype == "application/vnd.mapbox-vector-tile"
    tile = decode(res.data)
    mine = [f for f in tile["requests"]["features"] if f["properties"]["public_id"] == ticket["public_id"]]
    assert len(mine) == 1
    props = mine[0]["properties"]
    assert props["service_code"] == "animal-generic" and props["status"] == "open"
    assert props["coarsened"] is False
    blob = res.data.decode("latin-1")
    for value in ("Zebulon", "Quixotesque", "5550199", "zebulon.q@example.org", "Stray dog"):
        assert value not in blob


# The coarsening grid's cell in EPSG:3857 units: 250 m on the ground at the city's latitude (42°, rounded).
CELL = 250 / math.cos(math.radians(42))


def test_a_sensitive_request_is_snapped_to_the_250_m_grid(client, conn, app):
    ticket = submit(conn, service="bed-bugs", lat=42.33461, lon=-71.03993, attributes={})
    exact = conn.execute(text("SELECT ST_X(ST_Transform(geom, 3857)), ST_Y(ST_Transform(geom, 3857)) "
                              "FROM public_requests WHERE public_id = :p"), {"p": ticket["public_id"]}).one()
    assert abs(exact[0] / CELL - round(exact[0] / CELL)) < 1e-6 and abs(exact[1] / CELL - round(exact[1] / CELL)) < 1e-6
    raw = conn.execute(text("SELECT ST_X(ST_Transform(geom, 3857)), ST_Y(ST_Transform(geom, 3857)) "
                            "FROM service_requests WHERE public_id = :p"), {"p": ticket["public_id"]}).one()
    assert (raw[0], raw[1]) != (exact[0], exact[1])
    fresh_version(app)
    lat, lon = conn.execute(text("SELECT ST_Y(geom), ST_X(geom) FROM public_requests WHERE public_id = :p"),
                            {"p": ticket["public_id"]}).one()
    z, x, y = tile_of(lat, lon, 16)
    tile = decode(client.get(f"/tiles/requests/{z}/{x}/{y}.mvt").data)
    feat = next(f for f in tile["requests"]["features"] if f["properties"]["public_id"] == ticket["public_id"])
    assert feat["properties"]["coarsened"] is True
    # tile coordinates of the snapped point, not of the exact one
    n = 2 ** z
    size = 40075016.68557849 / n
    px = (exact[0] + 20037508.342789244 - x * size) / size * 4096
    py = (20037508.342789244 - exact[1] - y * size) / size * 4096
    gx, gy = feat["geometry"]["coordinates"]
    assert abs(gx - px) <= 1 and abs((4096 - gy) - py) <= 1


def test_filters_by_status_category_and_date(client, conn, app):
    ticket = submit(conn)
    fresh_version(app)
    z, x, y = tile_of(*SOUTH_BOSTON, 16)
    url = f"/tiles/requests/{z}/{x}/{y}.mvt"
    assert ticket["public_id"] in public_ids(decode(client.get(url + "?status=open,acknowledged").data))
    assert ticket["public_id"] not in public_ids(decode(client.get(url + "?status=closed").data))
    assert ticket["public_id"] in public_ids(decode(client.get(url + "?service=animal-generic").data))
    assert ticket["public_id"] not in public_ids(decode(client.get(url + "?service=pothole").data))
    assert ticket["public_id"] not in public_ids(decode(client.get(url + "?until=2001-01-01").data))
    assert ticket["public_id"] in public_ids(decode(client.get(url + "?since=2001-01-01&recent_days=30").data))
    for bad in ("?status=gone", "?since=yesterday", "?service=a'b", "?recent_days=-3"):
        res = client.get(url + bad)
        assert res.status_code == 400 and res.is_json, bad


def test_low_zoom_clusters_count_every_public_request_in_the_tile(client, conn):
    z, x, y = tile_of(*SOUTH_BOSTON, 12)
    tile = decode(client.get(f"/tiles/requests/{z}/{x}/{y}.mvt?status=open").data)
    total = sum(f["properties"]["count"] for f in tile["requests"]["features"])
    expected = conn.execute(text(
        "SELECT count(*) FROM public_requests WHERE status = 'open' AND "
        "ST_Intersects(ST_Transform(geom, 3857), ST_TileEnvelope(:z, :x, :y))"), {"z": z, "x": x, "y": y}).scalar()
    assert expected > 0 and total == expected


def test_etag_revalidation_and_invalidation_when_data_change(client, conn, app):
    z, x, y = tile_of(*SOUTH_BOSTON, 16)
    url = f"/tiles/requests/{z}/{x}/{y}.mvt"
    first = client.get(url)
    etag = first.headers["ETag"]
    assert "max-age" in first.headers["Cache-Control"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    ticket = submit(conn)
    fresh_version(app)
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert ticket["public_id"] in public_ids(decode(changed.data))


def test_district_layers_as_tiles_and_unknown_layers_or_tiles_refused(client, conn):
    z, x, y = tile_of(*SOUTH_BOSTON, 13)
    tile = decode(client.get(f"/tiles/wards/{z}/{x}/{y}.mvt").data)
    assert "6" in {f["properties"]["code"] for f in tile["wards"]["features"]}
    police = decode(client.get(f"/tiles/police_districts/{z}/{x}/{y}.mvt").data)
    assert "C6" in {f["properties"]["code"] for f in police["police_districts"]["features"]}
    pid, lat, lon = conn.execute(text("SELECT parcel_id, ST_Y(ST_PointOnSurface(geom)), ST_X(ST_PointOnSurface(geom)) "
                                      "FROM parcels ORDER BY id LIMIT 1")).one()
    z, x, y = tile_of(lat, lon, 17)
    parcels = decode(client.get(f"/tiles/parcels/{z}/{x}/{y}.mvt").data)
    assert pid in {f["properties"]["parcel_id"] for f in parcels["parcels"]["features"]}
    z, x, y = tile_of(lat, lon, 11)    # parcels only from zoom 14: a city of parcels is no tile
    assert client.get(f"/tiles/parcels/{z}/{x}/{y}.mvt").data == b""
    layers = {layer["name"] for layer in client.get("/tiles/layers.json").get_json()["layers"]}
    assert {"requests", "wards", "precincts", "neighborhoods", "police_districts", "parcels"} <= layers
    assert client.get("/tiles/nope/1/0/0.mvt").status_code == 404
    assert client.get("/tiles/requests/3/8/0.mvt").status_code == 404
    assert client.get("/tiles/requests/30/0/0.mvt").status_code == 404


def test_gdal_mvt_driver_reads_the_tile(client, conn, tmp_path, app):
    ticket = submit(conn)
    fresh_version(app)
    z, x, y = tile_of(*SOUTH_BOSTON, 16)
    path = tmp_path / f"{z}" / f"{x}"
    path.mkdir(parents=True)
    tile_file = path / f"{y}.pbf"
    data = client.get(f"/tiles/requests/{z}/{x}/{y}.mvt").data
    tile_file.write_bytes(data)
    expected = len(decode(data)["requests"]["features"])
    out = subprocess.run(["ogrinfo", "-ro", "-al", "-q", "-oo", "CLIP=NO", str(tile_file)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("OGRFeature(requests)") == expected
    assert f"public_id (String) = {ticket['public_id']}" in out.stdout
    # GDAL places it back near the real point (tile coordinates georeferenced from z/x/y in the path)
    assert "POINT (-71.03" in out.stdout or "POINT (-7908" in out.stdout


def test_data_version_moves_on_every_committed_change_and_only_then(conn, engine):
    from gis.public import data_version
    before = data_version(conn, "requests")
    conn.rollback()
    ticket = submit(conn)                              # commits: one bump for the whole transaction
    after_insert = data_version(conn, "requests")
    conn.rollback()
    assert after_insert == before + 1
    with engine.begin() as c:                          # a rolled-back change moves nothing
        pass
    c2 = engine.connect()
    c2.execute(text("UPDATE service_requests SET address = 'x' WHERE public_id = :p"), {"p": ticket["public_id"]})
    c2.rollback()
    c2.close()
    assert data_version(conn, "requests") == after_insert
    conn.rollback()
    with engine.begin() as c:
        c.execute(text("UPDATE services SET sensitive = sensitive WHERE code = 'pothole'"))
    assert data_version(conn, "requests") == after_insert + 1
    conn.rollback()
    layers_before = data_version(conn, "layers")
    conn.rollback()
    with engine.begin() as c:
        c.execute(text("UPDATE districts SET name = name WHERE code = '6'"))
    assert data_version(conn, "layers") == layers_before + 1


def test_public_point_follows_the_services_sensitive_flag(conn, engine):
    ticket = submit(conn)
    point = text("SELECT ST_AsText(geom), coarsened FROM public_requests WHERE public_id = :p")
    exact = conn.execute(point, {"p": ticket["public_id"]}).one()
    conn.rollback()
    assert exact[1] is False
    try:
        with engine.begin() as c:
            c.execute(text("UPDATE services SET sensitive = true WHERE code = 'animal-generic'"))
        snapped = conn.execute(point, {"p": ticket["public_id"]}).one()
        conn.rollback()
        assert snapped[1] is True and snapped[0] != exact[0]
        moved = conn.execute(text(f"SELECT ST_X(ST_Transform(geom, 3857)) / {CELL} FROM public_requests "
                                  "WHERE public_id = :p"),
                             {"p": ticket["public_id"]}).scalar()
        conn.rollback()
        assert abs(moved - round(moved)) < 1e-6
    finally:
        with engine.begin() as c:
            c.execute(text("UPDATE services SET sensitive = false WHERE code = 'animal-generic'"))
    assert conn.execute(point, {"p": ticket["public_id"]}).one()[0] == exact[0]
