"""Open311 GeoReport v2: the real `georeport` client, the spec's formats and errors, bad input."""
import json
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import jsonschema
import pytest
import requests
from georeport import GeoReport
from sqlalchemy import text

from gis import apikeys
from gis.services import catalogue

from tests.conftest import ROOT

SOUTH_BOSTON = ("42.3345", "-71.0398")

# JSON Schemas written from the GeoReport v2 specification (wiki.open311.org/GeoReport_v2).
SERVICE = {"type": "object", "required": ["service_code", "service_name", "metadata", "type"],
           "properties": {"service_code": {"type": "string"}, "service_name": {"type": "string"},
                          "description": {"type": "string"}, "metadata": {"type": "boolean"},
                          "type": {"enum": ["realtime", "batch", "blackbox"]}, "keywords": {"type": "string"},
                          "group": {"type": "string"}}}
DEFINITION = {"type": "object", "required": ["service_code", "attributes"], "properties": {
    "service_code": {"type": "string"},
    "attributes": {"type": "array", "items": {"type": "object", "required": ["variable", "code", "datatype",
                                                                             "required", "order", "description"],
                   "properties": {"datatype": {"enum": ["string", "number", "datetime", "text",
                                                        "singlevaluelist", "multivaluelist"]},
                                  "values": {"type": "array", "items": {"type": "object",
                                                                        "required": ["key", "name"]}}}}}}}
REQUEST = {"type": "object", "required": ["service_request_id", "status", "service_code", "requested_datetime",
                                          "lat", "long"],
           "properties": {"service_request_id": {"type": "string"}, "status": {"enum": ["open", "closed"]},
                          "lat": {"type": "number"}, "long": {"type": "number"},
                          "requested_datetime": {"type": "string", "format": "date-time"}}}
ERRORS = {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["code", "description"],
                                                    "properties": {"code": {"type": "integer"},
                                                                   "description": {"type": "string"}}}}


def _post(live_server, **form):
    return requests.post(f"{live_server}/open311/v2/requests.json", data=form, timeout=10)


def _dead_animal(api_key, **extra):
    return {"api_key": api_key, "service_code": "dead-animal", "lat": SOUTH_BOSTON[0], "long": SOUTH_BOSTON[1],
            "attribute[animal_size]": "medium", **extra}


def test_the_georeport_client_reads_services_and_requests_in_json_and_xml(live_server, api_key, conn):
    created = _post(live_server, **_dead_animal(api_key, description="raccoon by the curb",
                                                email="resident@example.org"))
    assert created.status_code == 201, created.text
    public_id = created.json()[0]["service_request_id"]
    for fmt in ("json", "xml"):
        client = GeoReport(f"{live_server}/open311/v2", output_format=fmt)
        services = client.get_service_list()
        codes = {s["service_code"] for s in services}
        assert "dead-animal" in codes and "snow-plowing" not in codes     # internal services are not offered
        definition = client.get_service_definition("animal-generic")
        if fmt == "xml":
            definition = definition.get("service_definition", definition)
            attrs = definition["attributes"]["attribute"]
        else:
            jsonschema.validate(definition, DEFINITION)
            attrs = definition["attributes"]
        assert "animal_type" in [a["code"] for a in attrs]
        one = client.get_service_request(public_id)
        assert one["service_request_id"] == public_id and one["status"] == "open"
        assert one["service_code"] == "dead-animal"
        listed = client.get_service_requests(service_request_id=public_id)
        listed = listed if isinstance(listed, list) else [listed]
        assert [r["service_request_id"] for r in listed] == [public_id]
    for s in requests.get(f"{live_server}/open311/v2/services.json", timeout=10).json():
        jsonschema.validate(s, SERVICE)
    for r in requests.get(f"{live_server}/open311/v2/requests.json?extensions=true", timeout=10).json():
        jsonschema.validate(r, REQUEST)
    row = conn.execute(text("SELECT r.crew_id, r.channel, c.code FROM service_requests r JOIN crews c "
                            "ON c.id = r.crew_id WHERE r.public_id = :p"), {"p": public_id}).one()
    assert row.channel == "open311" and row.code == "animal-control-c6"    # routed like any other request


def test_a_retried_post_with_the_same_token_returns_the_same_request(live_server, api_key, conn):
    first = _post(live_server, **_dead_animal(api_key, token="app-retry-1"))
    again = _post(live_server, **_dead_animal(api_key, token="app-retry-1"))
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()[0]["service_request_id"] == again.json()[0]["service_request_id"]
    by_token = requests.get(f"{live_server}/open311/v2/tokens/app-retry-1.json", timeout=10).json()
    assert by_token[0]["service_request_id"] == first.json()[0]["service_request_id"]
    assert conn.scalar(text("SELECT count(*) FROM service_requests WHERE idempotency_key = 'app-retry-1'")) == 1


@pytest.mark.parametrize("form, status, words", [
    ({"service_code": "no-such-service"}, 400, "unknown service"),
    ({"service_code": "snow-plowing", "attribute[animal_size]": None}, 400, "unknown service"),
    ({"attribute[animal_size]": "enormous"}, 400, "not one of"),
    ({"attribute[animal_size]": ""}, 400, "required"),
    ({"lat": "42.3736", "long": "-71.1097"}, 400, "outside the city"),
    ({"lat": "nan"}, 400, "finite"),
    ({"lat": None, "long": None}, 400, "location is required"),
    ({"description": "x" * 4001}, 400, "4000"),
    ({"api_key": "wrong"}, 403, "api_key"),
    ({"api_key": None}, 403, "api_key"),
])
def test_bad_posts_get_spec_errors_and_write_nothing(live_server, api_key, conn, form, status, words):
    before = conn.scalar(text("SELECT count(*) FROM service_requests"))
    body = {k: v for k, v in {**_dead_animal(api_key), **form}.items() if v is not None}
    for fmt in ("json", "xml"):
        answer = requests.post(f"{live_server}/open311/v2/requests.{fmt}", data=body, timeout=10)
        assert answer.status_code == status, answer.text
        if fmt == "json":
            jsonschema.validate(answer.json(), ERRORS)
            assert words in answer.json()[0]["description"]
        else:
            error = ET.fromstring(answer.content).find("error")
            assert error.find("code").text == str(status) and words in error.find("description").text
    assert conn.scalar(text("SELECT count(*) FROM service_requests")) == before


def test_malformed_bodies_and_queries_are_400s(live_server, api_key):
    as_json = requests.post(f"{live_server}/open311/v2/requests.json", json=_dead_animal(api_key), timeout=10)
    assert as_json.status_code == 400 and "form-encoded" in as_json.json()[0]["description"]
    garbage = requests.post(f"{live_server}/open311/v2/requests.xml", data=b"<request><oops",
                            headers={"Content-Type": "text/xml"}, timeout=10)
    assert garbage.status_code == 400
    for query in ("start_date=yesterday", "start_date=2015-01-01T00:00:00Z&end_date=2015-12-31T00:00:00Z",
                  "status=pending", "bbox=1,2,3", "lat=42.3&long=abc", "page_size=100000", "page=0"):
        answer = requests.get(f"{live_server}/open311/v2/requests.json?{query}", timeout=10)
        assert answer.status_code == 400, query
    assert requests.get(f"{live_server}/open311/v2/requests/424242424242.json", timeout=10).status_code == 404
    assert requests.get(f"{live_server}/open311/v2/services/nope.xml", timeout=10).status_code == 404
    assert requests.get(f"{live_server}/open311/v2/services.json?jurisdiction_id=elsewhere",
                        timeout=10).status_code == 404


def test_extensions_filter_by_place_and_never_carry_personal_data(live_server, api_key):
    made = _post(live_server, **_dead_animal(api_key, first_name="Zebediah", phone="+16175550199",
                                             email="zebediah@example.org")).json()[0]["service_request_id"]
    near = requests.get(f"{live_server}/open311/v2/requests.json", params={
        "lat": SOUTH_BOSTON[0], "long": SOUTH_BOSTON[1], "radius": 30, "extensions": "true"}, timeout=10)
    ids = [r["service_request_id"] for r in near.json()]
    assert made in ids
    far = requests.get(f"{live_server}/open311/v2/requests.json",
                       params={"bbox": "-71.2,42.35,-71.15,42.37"}, timeout=10).json()
    assert made not in [r["service_request_id"] for r in far]
    extended = next(r for r in near.json() if r["service_request_id"] == made)["extended_attributes"]
    assert extended["districts"]["police_districts"] == "C6" and extended["channel"] == "open311"
    for fmt in ("json", "xml"):
        page = requests.get(f"{live_server}/open311/v2/requests.{fmt}?extensions=true", timeout=10).text
        for secret in ("Zebediah", "5550199", "zebediah@example.org"):
            assert secret not in page


def test_paging_walks_every_request_once(live_server, api_key):
    for i in range(5):
        _post(live_server, **_dead_animal(api_key, token=f"paging-{i}"))
    seen, page = [], 1
    while True:
        chunk = requests.get(f"{live_server}/open311/v2/requests.json",
                             params={"service_code": "dead-animal", "page_size": 2, "page": page}, timeout=10).json()
        if not chunk:
            break
        seen += [r["service_request_id"] for r in chunk]
        page += 1
    assert len(seen) == len(set(seen)) >= 5


def test_a_burst_of_10000_posts_over_http_loses_nothing_and_duplicates_nothing(rate_limited, conn):
    """10,000 POSTs from 16 concurrent clients, a fifth of them the same request sent twice at once (a
    client retrying), against the real rate limits: every POST is either acknowledged — and then stored
    exactly once, with its event — or refused with 429 and Retry-After, and then not stored at all."""
    import random
    import threading
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from werkzeug.serving import make_server

    from gis import apikeys

    limit = 2500
    burst_app = rate_limited(OPEN311_POST_LIMIT=f"{limit} per hour", OPEN311_POST_IP_LIMIT="100000 per hour")
    _, key = apikeys.create(conn, "burst client", ("open311:write",))
    conn.commit()
    run = uuid.uuid4().hex[:8]
    tokens = [f"b{run}-{i}" for i in range(8000)]
    sends = tokens + tokens[:2000]
    random.Random(311).shuffle(sends)
    server = make_server("127.0.0.1", 0, burst_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/open311/v2/requests.json"
    local = threading.local()

    def post(token):
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        r = session.post(url, data=_dead_animal(key, token=token), timeout=60)
        return token, r.status_code, r.headers.get("Retry-After"), r.json()

    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(post, sends))
    finally:
        server.shutdown()
    statuses = {s for _, s, _, _ in answers}
    assert statuses <= {200, 201, 429}, statuses
    refused = [a for a in answers if a[1] == 429]
    assert refused and all(a[2] and int(a[2]) > 0 and a[3][0]["code"] == 429 for a in refused)
    acked = {}
    for token, status, _, body in answers:
        if status in (200, 201):
            assert acked.setdefault(token, body[0]["service_request_id"]) == body[0]["service_request_id"]
    assert 0 < sum(a[1] in (200, 201) for a in answers) <= limit
    stored = conn.execute(text("""
        SELECT r.idempotency_key, r.public_id, count(e.id) FILTER (WHERE e.kind = 'created') AS created
          FROM service_requests r LEFT JOIN request_events e ON e.request_id = r.id
         WHERE r.idempotency_key LIKE :p GROUP BY 1, 2"""), {"p": f"b{run}-%"}).all()
    assert {s.idempotency_key: s.public_id for s in stored} == acked     # each acknowledged once, nothing else
    assert all(s.created == 1 for s in stored)


def test_a_keys_limit_holds_across_worker_processes(api_key, conn):
    """Two web worker processes (as gunicorn runs them) count against one limit: the counters live in
    PostgreSQL (gis.ratelimit), not in each process's memory, where 4 + 4 posts would all pass a limit of 5."""
    import subprocess
    import sys
    import uuid
    worker = """
import json, sys
from app import create_app
app = create_app({"RATELIMIT_ENABLED": True, "OPEN311_POST_LIMIT": "5 per hour", "SECRET_KEY": "x" * 32})
client = app.test_client()
codes = [client.post("/open311/v2/requests.json", data=json.loads(sys.argv[1]) | {"token": t}).status_code
         for t in sys.argv[2:]]
print(json.dumps(codes))
"""
    run = uuid.uuid4().hex[:8]
    payload = json.dumps(_dead_animal(api_key))
    codes = []
    for name in ("a", "b"):
        tokens = [f"w{run}{name}{i}" for i in range(4)]
        out = subprocess.run([sys.executable, "-c", worker, payload, *tokens], capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-2000:]
        codes += json.loads(out.stdout.strip().splitlines()[-1])
    assert codes == [201] * 5 + [429] * 3
    # the counters are keyed by the key's digest: the key itself is stored nowhere (it was, in rate_limits)
    assert conn.scalar(text("SELECT count(*) FROM rate_limits WHERE strpos(key, :k) > 0"), {"k": api_key}) == 0
    assert conn.scalar(text("SELECT count(*) FROM rate_limits WHERE strpos(key, :d) > 0"),
                       {"d": apikeys.digest(api_key)}) > 0
    assert conn.scalar(text("SELECT count(*) FROM service_requests WHERE idempotency_key LIKE :p"),
                       {"p": f"w{run}%"}) == 5


def test_multivaluelist_answers_in_the_specs_bracket_form(client, api_key, conn):
    """attribute[code][]=a&attribute[code][]=b (GeoReport v2's form for a multivaluelist) was refused as an
    unknown attribute 'code]['."""
    svc = next(s for s in catalogue.all(conn).values() if s.public and any(
        a["datatype"] == "multivaluelist" for a in s.attributes))
    conn.rollback()
    multi = next(a for a in svc.attributes if a["datatype"] == "multivaluelist")
    keys = [v["key"] for v in multi["values"]][:2]
    form = {"api_key": api_key, "service_code": svc.code, "lat": SOUTH_BOSTON[0], "long": SOUTH_BOSTON[1]}
    for a in svc.attributes:
        if a.get("required") and a is not multi:
            form[f"attribute[{a['code']}]"] = a["values"][0]["key"] if a.get("values") else "1"
    body = "&".join([urlencode(form), *(urlencode({f"attribute[{multi['code']}][]": k}) for k in keys)])
    made = client.post("/open311/v2/requests.json", data=body, content_type="application/x-www-form-urlencoded")
    assert made.status_code == 201, made.get_data(as_text=True)
    stored = conn.scalar(text("SELECT attributes -> :c FROM service_requests WHERE public_id = :p"),
                         {"c": multi["code"], "p": made.get_json()[0]["service_request_id"]})
    assert sorted(stored) == sorted(keys)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:image/png;base64,AAAA", "/relative.jpg", "ftp://x/y"])
def test_a_photo_address_must_be_http(client, api_key, url):
    made = client.post("/open311/v2/requests.json", data=_dead_animal(api_key, media_url=url))
    assert made.status_code == 400 and "media_url" in made.get_data(as_text=True)
