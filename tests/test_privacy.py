"""No public output carries a caller's personal data: insert requests with known contacts, then scan
every public endpoint (tiles decoded, OGC API, FeatureServer, public pages, Open311 GET) for every
contact value in the database."""
import json
import re

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from tests.test_tiles import SOUTH_BOSTON, submit, tile_of

CALLERS = [
    {"first_name": "Wilhelmina", "last_name": "Snodgrassova", "phone": "+1 617 555 0148",
     "email": "w.snodgrassova@example.org", "device_id": "device-7f3a9c21", "account_id": "acct-55e1b0"},
    {"first_name": "Octavius", "last_name": "Pemberton-Quill", "phone": "(617) 555-0173",
     "email": "opq+311@example.net"},
]


def _needles(conn):
    """Every contact value worth searching for (names short enough to be ordinary words are left out
    when they occur in the public street and place names)."""
    rows = conn.execute(text("SELECT first_name, last_name, phone, email, device_id, account_id FROM contacts"))
    needles = set()
    for row in rows:
        for key, value in row._mapping.items():
            if not value or len(value) < 4:
                continue
            needles.add(value.lower())
            if key == "phone":
                digits = re.sub(r"\D", "", value)
                needles.update({digits, digits[-10:]})
    common = {n for n in needles if len(n) < 8 and conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM address_points WHERE address ILIKE :p) OR "
        "EXISTS (SELECT 1 FROM services WHERE name ILIKE :p)"), {"p": f"%{n}%"}).scalar()}
    return needles - common


def _hits(needles, label, body):
    blob = (body if isinstance(body, str) else json.dumps(body, default=str)).lower()
    return [f"{label}: {n!r}" for n in needles if n in blob]


@pytest.fixture
def reported(conn):
    tickets = [submit(conn, contact=CALLERS[0], description="Dog loose"),
               submit(conn, service="bed-bugs", attributes={}, contact=CALLERS[1], description="Bugs",
                      lat=42.3352, lon=-71.0431)]
    return tickets


def test_no_contact_value_in_any_public_output(client, conn, reported, app):
    import time
    time.sleep(app.config.get("TILE_VERSION_TTL", 1.0) + 0.1)
    needles = _needles(conn)
    for caller in CALLERS:          # our own callers are certainly searched for
        assert caller["email"].lower() in needles
    hits, seen = [], 0

    def scan(label, body):
        nonlocal seen
        seen += 1
        hits.extend(_hits(needles, label, body))

    # vector tiles, decoded and raw, at clusters and point zooms around the reports
    for ticket in reported:
        lat, lon = conn.execute(text("SELECT ST_Y(geom), ST_X(geom) FROM public_requests WHERE public_id = :p"),
                                {"p": ticket["public_id"]}).one()
        for z in (11, 14, 16):
            z_, x, y = tile_of(lat, lon, z)
            data = client.get(f"/tiles/requests/{z_}/{x}/{y}.mvt").data
            decoded = mapbox_vector_tile.decode(data)
            if z == 16:
                assert ticket["public_id"] in json.dumps(decoded, default=str)
            scan(f"tile {z_}/{x}/{y}", decoded)
            scan(f"tile {z_}/{x}/{y} raw", data.decode("latin-1"))
    # OGC API: every feature, GeoJSON and CSV, and each report's own item
    offset, total = 0, None
    while total is None or offset < total:
        page = client.get(f"/ogc/collections/requests/items?limit=10000&offset={offset}").get_json()
        total = page["numberMatched"]
        scan(f"ogc items offset {offset}", page)
        csv_url = f"/ogc/collections/requests/items?f=csv&limit=10000&offset={offset}"
        scan(f"ogc csv offset {offset}", client.get(csv_url).get_data(as_text=True))
        offset += 10000
    for ticket in reported:
        scan("ogc item", client.get(f"/ogc/collections/requests/items/{ticket['public_id']}").get_json())
    scan("ogc collections", client.get("/ogc/collections").get_json())
    # FeatureServer: every feature, Esri JSON and GeoJSON
    q = "/arcgis/rest/services/requests/FeatureServer/0/query"
    for fmt in ("json", "geojson"):
        offset = 0
        while True:
            page = client.get(q, query_string={"where": "1=1", "outFields": "*", "f": fmt,
                                               "resultOffset": offset, "resultRecordCount": 2000}).get_json()
            scan(f"featureserver {fmt} {offset}", page)
            offset += 2000
            if not (page.get("exceededTransferLimit") or page.get("properties", {}).get("exceededTransferLimit")):
                break
    scan("featureserver layer", client.get("/arcgis/rest/services/requests/FeatureServer/0?f=json").get_json())
    # public pages
    for ticket in reported:
        scan("status page", client.get(f"/requests/{ticket['public_id']}").get_data(as_text=True))
        scan("status card", client.get(f"/requests/{ticket['public_id']}.json").get_json())
    scan("near me", client.get(f"/near?lat={SOUTH_BOSTON[0]}&lon={SOUTH_BOSTON[1]}&format=json").get_json())
    scan("near me page", client.get("/near?address=615 E Fourth St").get_data(as_text=True))
    for path in ("/map", "/report", "/requests"):
        scan(path, client.get(path).get_data(as_text=True))
    # Open311 GeoReport v2 (another engineer's endpoint), once it exists
    res = client.get("/open311/v2/requests.json")
    if res.status_code != 404:
        scan("open311 requests", res.get_data(as_text=True))
        for ticket in reported:
            one = f"/open311/v2/requests/{ticket['public_id']}"
            scan("open311 request", client.get(f"{one}.json").get_data(as_text=True))
            scan("open311 request xml", client.get(f"{one}.xml").get_data(as_text=True))
    assert seen > 20
    assert not hits, "personal data in public outputs:\n" + "\n".join(hits[:50])


def test_the_scan_would_see_a_leak(conn, reported):
    """The scan is not blind: a contact value placed in a public field is found."""
    needles = _needles(conn)
    leaked = {"address": "12 Main St, c/o " + CALLERS[0]["email"].upper()}
    assert _hits(needles, "fake", leaked)
    assert _hits(needles, "fake", "call 6175550173 please")
