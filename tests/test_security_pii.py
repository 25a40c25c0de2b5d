"""PII scan: a caller's name, phone, e-mail and a request's private description never reach a public output.

Two requests are made with unmistakable contact details (one of a sensitive service, whose exact spot is
private too). Then every public GET endpoint of the app — taken from the authorization matrix, so a new
public route is scanned automatically — is fetched with arguments that point at those requests (tiles
over the spot at several zooms and decoded, OGC and FeatureServer in every format, Open311 JSON and XML,
the public pages), and each answer is searched for every form of the details.
"""
import json
import math
import re
import uuid

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from gis import intake
from tests.arcgis_fixtures import arcgis_env, portal, published  # noqa: F401
from tests.test_authz import EVERYONE, POLICY

SPOT = (42.35123, -71.06417)
SENSITIVE_SPOT = (42.34567, -71.07321)
FIRST, LAST = "Zyxquinta", "Pralltrooper"
PHONE_DIGITS = "6175550987"
EMAIL = "pii-probe-7f3a@example.test"
DESCRIPTION = "Secret-description-9c41 behind the blue door"
NEEDLES = (FIRST, LAST, PHONE_DIGITS, "617-555-0987", "(617) 555-0987", "+16175550987", "555-0987", EMAIL,
           "pii-probe-7f3a", "Secret-description-9c41", "blue door")


def _tile_xy(lat, lon, z):
    n = 2 ** z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


@pytest.fixture(scope="module")
def tickets(engine):
    made = []
    with engine.connect() as c:
        for code, (lat, lon), attrs in (("pothole", SPOT, {}),
                                        ("needle-pickup", SENSITIVE_SPOT, {"location_type": "sidewalk"})):
            t = intake.submit_request(c, intake.NewRequest(
                service_code=code, lat=lat, lon=lon, description=DESCRIPTION, attributes=attrs,
                contact={"first_name": FIRST, "last_name": LAST, "phone": PHONE_DIGITS, "email": EMAIL},
                channel="phone", actor="agent:test-agent", idempotency_key=str(uuid.uuid4())))
            made.append(t)
        c.commit()
    yield made
    with engine.begin() as c:
        c.execute(text("DELETE FROM service_requests WHERE id = ANY(:ids)"), {"ids": [t["id"] for t in made]})


def _urls(app, tickets):
    """Every public GET endpoint, with arguments aimed at the probe requests."""
    plain, sensitive = tickets
    out = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or POLICY.get((rule.endpoint, "GET")) is not EVERYONE:
            continue
        if rule.endpoint == "layers.tile":
            for z in (10, 12, 14, 16):
                for lat, lon in (SPOT, SENSITIVE_SPOT):
                    x, y = _tile_xy(lat, lon, z)
                    out.append(f"/tiles/requests/{z}/{x}/{y}.mvt")
            continue
        variants = [{}]
        if "public_id" in rule.arguments:
            variants = [{"public_id": t["public_id"]} for t in tickets]
        for v in variants:
            values = {"fmt": "json", "name": "requests", "fid": v.get("public_id", plain["public_id"]),
                      "code": "pothole", "token": "x", "layer_id": 0, "filename": "css/pin311.css", **v}
            path = rule.rule
            for arg in rule.arguments:
                path = re.sub(r"<(?:[a-z]+:)?%s>" % arg, str(values.get(arg, "x")), path)
            out.append(path)
            if "<fmt>" in rule.rule:
                out.append(path.replace(".json", ".xml"))
    near = f"lat={SPOT[0]}&lon={SPOT[1]}"
    box = f"{SPOT[1] - .01},{SPOT[0] - .01},{SPOT[1] + .01},{SPOT[0] + .01}"
    out += [
        f"/ogc/collections/requests/items?limit=1000&bbox={box}",
        "/ogc/collections/requests/items?f=csv&service_code=needle-pickup",
        "/ogc/collections/requests/items?service_code=pothole&limit=1000",
        "/arcgis/rest/services/requests/FeatureServer/0/query?where=1%3D1&outFields=*&f=json&resultRecordCount=2000"
        "&orderByFields=objectid+DESC",
        "/arcgis/rest/services/requests/FeatureServer/0/query?where=1%3D1&outFields=*&f=geojson"
        "&resultRecordCount=2000&orderByFields=objectid+DESC",
        f"/open311/v2/requests.json?service_request_id={plain['public_id']},{sensitive['public_id']}",
        f"/open311/v2/requests.xml?service_request_id={plain['public_id']},{sensitive['public_id']}",
        "/open311/v2/requests.json?page_size=200", f"/near?{near}", f"/near?{near}&format=json",
        f"/requests?number={plain['public_id']}", "/map?service_code=pothole",
    ]
    return out


def _text(response):
    body = response.get_data()
    if response.mimetype == "application/vnd.mapbox-vector-tile" and body:
        return repr(mapbox_vector_tile.decode(body))
    return body.decode("utf-8", "replace")


def test_no_contact_details_or_description_in_any_public_output(app, tickets):
    client = app.test_client()
    urls = _urls(app, tickets)
    assert len(urls) > 40
    leaks, answered = [], 0
    for url in urls:
        r = client.get(url)
        assert r.status_code < 500, f"{url}: {r.status_code}"
        answered += r.status_code == 200
        body = _text(r)
        for needle in NEEDLES:
            if needle.lower() in body.lower():
                leaks.append(f"{url}: {needle!r}")
    assert not leaks, "\n".join(leaks)
    assert answered > 30


def test_the_probe_requests_are_public_but_the_sensitive_spot_is_coarsened(app, tickets):
    client = app.test_client()
    plain, sensitive = tickets
    found = client.get(f"/open311/v2/requests.json?service_request_id={plain['public_id']},"
                       f"{sensitive['public_id']}").get_json()
    by_id = {r["service_request_id"]: r for r in found}
    assert plain["public_id"] in by_id  # the scan above looked at real rows, not at nothing
    assert abs(by_id[plain["public_id"]]["lat"] - SPOT[0]) < 1e-5
    if sensitive["public_id"] in by_id:
        s = by_id[sensitive["public_id"]]
        assert abs(s["lat"] - SENSITIVE_SPOT[0]) + abs(s["long"] - SENSITIVE_SPOT[1]) > 1e-4
    card = client.get(f"/requests/{sensitive['public_id']}.json")
    if card.status_code == 200:
        body = card.get_json()
        text_ = str(body)
        assert f"{SENSITIVE_SPOT[0]:.5f}" not in text_ and f"{SENSITIVE_SPOT[1]:.5f}" not in text_


def test_nothing_personal_in_what_arcgis_online_holds(engine, tickets, portal, published):
    """Published layers are public too: publish (with the probe requests in), then sync a probe request
    submitted afterwards, and search everything the stand-in portal holds — items, their data, every
    hosted layer's definition and features — for the same details."""
    from gis import arcgis_sync
    with engine.connect() as c:
        late = intake.submit_request(c, intake.NewRequest(
            service_code="pothole", lat=SPOT[0], lon=SPOT[1], description=DESCRIPTION,
            contact={"first_name": FIRST, "last_name": LAST, "phone": PHONE_DIGITS, "email": EMAIL},
            channel="phone", actor="agent:test-agent", idempotency_key=str(uuid.uuid4())))
    try:
        assert arcgis_sync.drain(engine) >= 1
        held = {pid for layer in _hosted_layers(portal) for f in layer.rows()
                for pid in [f["attributes"].get("public_id")] if pid}
        assert {t["public_id"] for t in tickets} | {late["public_id"]} <= held   # real rows were scanned
        everything = json.dumps([portal.items, portal.item_data,
                                 [(layer.definition, layer.rows()) for layer in _hosted_layers(portal)]],
                                default=str).lower()
        leaks = [n for n in NEEDLES if n.lower() in everything]
        assert not leaks, leaks
    finally:
        with engine.begin() as c:
            c.execute(text("DELETE FROM service_requests WHERE id = :i"), {"i": late["id"]})


def _hosted_layers(portal):
    return [layer for service in portal.services.values() for layer in service["layers"].values()]
