"""POST /api/v1/requests and friends through HTTP (Flask test client): hostile input gets a typed 4xx
JSON error and writes nothing; good input is stored verbatim and read back as JSON."""
import json

import pytest
from sqlalchemy import text

SOUTH_BOSTON = (42.3345, -71.0398)
TABLES = ("service_requests", "request_events", "outbox", "contacts")
SQL = "'; DROP TABLE service_requests; --"
XSS = "<script>alert('pin311')</script><img src=x onerror=alert(1)>"


def counts(conn):
    return [conn.scalar(text(f"SELECT count(*) FROM {t}")) for t in TABLES]


def body(**kw):
    base = {"service_code": "animal-generic", "lat": SOUTH_BOSTON[0], "lon": SOUTH_BOSTON[1],
            "attributes": {"animal_type": "dog"}, "description": "Stray dog by the school"}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not ...}


def post(client, api_key, payload, raw=None, **headers):
    data = raw if raw is not None else json.dumps(payload, allow_nan=True)
    return client.post("/api/v1/requests", data=data, content_type="application/json",
                       headers={"X-Api-Key": api_key, **headers})


def refused(client, api_key, conn, payload=None, raw=None, status=400, error=None):
    before = counts(conn)
    resp = post(client, api_key, payload, raw=raw)
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    assert resp.is_json, resp.get_data(as_text=True)[:300]
    out = resp.get_json()
    assert out["message"] and "Traceback" not in out["message"]
    if error:
        assert out["error"] == error, out
    conn.rollback()
    assert counts(conn) == before, "a refused request wrote something"
    return out


@pytest.mark.parametrize("raw, message", [
    ('{"service_code": "animal-generic", "lat": NaN, "lon": -71.04, "attributes": {"animal_type": "dog"}}',
     "finite"),
    ('{"service_code": "animal-generic", "lat": 42.33, "lon": Infinity, "attributes": {"animal_type": "dog"}}',
     "finite"),
    ('{"service_code": "animal-generic", "lat": 1e400, "lon": -71.04, "attributes": {"animal_type": "dog"}}',
     "finite"),
    ('{"service_code": "animal-generic", "lat": "NaN", "lon": "-71.04", "attributes": {"animal_type": "dog"}}',
     "finite"),
    ('{"service_code": "animal-generic", "lat": 91, "lon": -71.04, "attributes": {"animal_type": "dog"}}',
     "within"),
    ('{"service_code": "animal-generic", "lat": -71.0398, "lon": 42.3345, "attributes": {"animal_type": "dog"}}',
     "swapped"),
    ('{"service_code": "animal-generic", "lat": [42.3], "lon": {"x": 1}, "attributes": {"animal_type": "dog"}}',
     "decimal"),
    ('{"service_code": "animal-generic", "lat": 42.33, "attributes": {"animal_type": "dog"}}', "both"),
])
def test_bad_coordinates(client, api_key, conn, raw, message):
    out = refused(client, api_key, conn, raw=raw, error="invalid_location")
    assert message in out["message"] and out["field"] == "lat"


@pytest.mark.parametrize("lat, lon, where", [
    (42.33, -70.95, "the harbour"), (40.7128, -74.0060, "New York"), (42.3736, -71.1097, "Cambridge"),
    (0.0, 0.0, "null island"),
])
def test_points_outside_the_city(client, api_key, conn, lat, lon, where):
    out = refused(client, api_key, conn, body(lat=lat, lon=lon, contact={"email": "a@example.org"}),
                  error="outside_jurisdiction")
    assert "outside the city" in out["message"], where


@pytest.mark.parametrize("raw", ["", "not json", "[1, 2, 3]", '"a string"', "null", '{"lat": ', "\x00"])
def test_bodies_that_are_not_a_json_object(client, api_key, conn, raw):
    refused(client, api_key, conn, raw=raw, error="invalid_input")


def test_unknown_and_hostile_service_codes(client, api_key, conn):
    for code in ("no-such-service", SQL, XSS, "", None, 42, ["animal-generic"], "a" * 100_000):
        out = refused(client, api_key, conn, body(service_code=code), status=None or 400)
        assert out["error"] in ("unknown_service", "invalid_input"), out
    assert conn.scalar(text("SELECT count(*) FROM services")) > 25


def test_a_one_megabyte_description_is_refused(client, api_key, conn):
    out = refused(client, api_key, conn, body(description="x" * 1_048_576), error="invalid_input")
    assert out["field"] == "description"


def test_nul_characters_are_refused_not_a_500(client, api_key, conn):
    for field in ("description", "address"):
        refused(client, api_key, conn, body(**{field: "dog\x00bite"}), error="invalid_input")
    refused(client, api_key, conn, body(contact={"first_name": "A\x00"}), error="invalid_input")
    refused(client, api_key, conn, body(attributes={"animal_type": "dog\x00"}))


def test_hostile_text_in_every_free_text_field_is_stored_verbatim(client, api_key, conn):
    hostile = f"{SQL} {XSS}"
    photo = "https://example.org/p.jpg?q=" + hostile      # an http(s) address; hostile only in its query
    resp = post(client, api_key, body(description=hostile, address=hostile[:300], media_url=photo,
                                      channel=hostile, idempotency_key=hostile[:200],
                                      contact={"first_name": hostile[:100], "last_name": hostile[:100],
                                               "device_id": hostile, "account_id": hostile}))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    ticket = resp.get_json()
    assert ticket["description"] == hostile and ticket["channel"] == "api"   # unknown channel → api
    for secret in ("first_name", "last_name", "device_id"):
        assert secret not in ticket
    row = conn.execute(text("SELECT r.description, r.address_note, r.media_url, c.first_name, c.device_id "
                            "FROM service_requests r JOIN contacts c ON c.request_id = r.id "
                            "WHERE r.public_id = :p"), {"p": ticket["public_id"]}).one()
    assert row.description == hostile and row.address_note == hostile[:300] and row.media_url == photo
    assert row.first_name == hostile[:100] and row.device_id == hostile
    assert conn.scalar(text("SELECT count(*) FROM service_requests")) > 0   # the table is still there
    again = client.get(f"/api/v1/requests/{ticket['public_id']}", headers={"X-Api-Key": api_key})
    assert again.status_code == 200 and again.get_json()["description"] == hostile


@pytest.mark.parametrize("field, value, error", [
    ("address", "x" * 301, "invalid_input"), ("media_url", "https://x.org/" + "x" * 2000, "invalid_input"),
    ("idempotency_key", "k" * 201, "invalid_input"),
])
def test_overlong_fields(client, api_key, conn, field, value, error):
    refused(client, api_key, conn, body(**{field: value}), error=error)


def test_hostile_contact_fields(client, api_key, conn):
    for contact in ({"email": XSS}, {"email": SQL}, {"phone": XSS}, {"phone": "1" * 40},
                    {"first_name": "x" * 101}):
        refused(client, api_key, conn, body(contact=contact), error="invalid_input")
    refused(client, api_key, conn, body(contact=[SQL]), error="invalid_input")
    refused(client, api_key, conn, body(attributes=SQL), error="invalid_input")


def test_hostile_attributes(client, api_key, conn):
    refused(client, api_key, conn, body(attributes={"animal_type": SQL}), error="invalid_attribute")
    refused(client, api_key, conn, body(attributes={XSS: "dog"}), error="invalid_attribute")


def test_address_only_requests(client, api_key, conn):
    out = refused(client, api_key, conn, body(lat=..., lon=..., address=SQL), error="address_not_found")
    assert out["field"] == "address_string"
    out = refused(client, api_key, conn, body(lat=..., lon=..., address="100 Tremont St"), error="ambiguous_address")
    assert {c["city"] for c in out["candidates"]} == {"Boston", "Brighton"}
    refused(client, api_key, conn, body(lat=..., lon=..., address_id=SQL), error="invalid_location")
    created = post(client, api_key, body(lat=..., lon=..., address="615 east 4th street"))
    assert created.status_code == 201
    assert created.get_json()["crew"]["code"] == "animal-control-c6"


def test_without_a_key_nothing_is_written(client, conn):
    before = counts(conn)
    resp = client.post("/api/v1/requests", json=body())
    assert resp.status_code in (401, 403) and resp.is_json
    bad = client.post("/api/v1/requests", json=body(), headers={"X-Api-Key": SQL})
    assert bad.status_code in (401, 403) and bad.is_json
    conn.rollback()
    assert counts(conn) == before


def test_lookups_with_hostile_ids_and_points(client, api_key):
    for ref in (SQL, XSS.replace("/", ""), "9" * 500):
        resp = client.get(f"/api/v1/requests/{ref}", headers={"X-Api-Key": api_key})
        assert resp.status_code == 404 and resp.is_json
    for query in ("lat=NaN&lon=-71.04", "lat=42.33&lon=inf", "lat=abc&lon=1", "lat=95&lon=-71", ""):
        resp = client.get(f"/api/v1/locate?{query}", headers={"X-Api-Key": api_key})
        assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_location", query
    # A pin preview of a valid point outside the city is an answer, not an error: nothing there.
    swapped = client.get("/api/v1/locate?lat=-71.04&lon=42.33", headers={"X-Api-Key": api_key}).get_json()
    assert swapped["inside_jurisdiction"] is False and swapped["routing"] == [] and swapped["districts"] == {}
    resp = client.get("/api/v1/geocode", query_string={"q": SQL + "\x00"}, headers={"X-Api-Key": api_key})
    assert resp.status_code == 200 and resp.get_json() == {"candidates": []}
