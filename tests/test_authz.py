"""The authorization matrix: every role against every endpoint of the app, allowed and denied.

Built from the app's url_map: an endpoint that is not in POLICY fails the test, so a new route cannot
ship without someone deciding who may call it. Each (endpoint, method) is called once per role with
plausible arguments; "allowed" means the app did not refuse (not 401/403, not sent to the sign-in page,
and never a 5xx), "denied" means it did.
"""
import re

import pytest
from sqlalchemy import text

from app.auth import users
from gis import apikeys

ROLES = ("anonymous", "agent", "supervisor", "crew", "analyst", "admin")
STAFF = ("agent", "supervisor", "crew", "analyst", "admin")
EVERYONE = set(ROLES)
NOBODY = set()


def roles(*names):
    return {*names, "admin"}


# (endpoint, method) -> the roles that may call it with a browser session (or none).
# "key:<scope>" rows are the JSON API: any staff session, or an API key with that scope.
POLICY = {
    ("core.home", "GET"): EVERYONE,
    ("core.healthz", "GET"): EVERYONE,
    ("openapi", "GET"): EVERYONE,
    ("auth.login", "GET"): EVERYONE,
    ("auth.login", "POST"): EVERYONE,
    ("auth.logout", "POST"): EVERYONE,
    **{("auth.change_password", m): set(STAFF) for m in ("GET", "POST")},    # one's own password
    # agent console: call-takers and their supervisors
    **{("agent." + e, "GET"): roles("agent", "supervisor") for e in (
        "console", "screen_pop", "caller_history", "csrf_token", "events", "neighbourhoods", "open_requests",
        "outlines", "recent")},
    ("agent.attach_caller", "POST"): roles("agent", "supervisor"),
    # crew view: crews and supervisors; photos also for agents (a caller asks "did you fix it?")
    **{("crew." + e, "GET"): roles("crew", "supervisor") for e in (
        "near_me", "csrf_token", "near_json", "route_json", "ticket", "ticket_state")},
    ("crew.action", "POST"): roles("crew", "supervisor"),
    ("crew.photo", "GET"): roles("crew", "supervisor", "agent"),
    ("crew.photo_thumb", "GET"): roles("crew", "supervisor", "agent"),
    ("crew.service_worker", "GET"): EVERYONE,     # the crew pages' service worker: code, as /static is
    # dashboards and sweeps: analysts and supervisors
    **{("dashboards." + e, "GET"): roles("analyst", "supervisor") for e in (
        "index", "chart", "data_csv", "data_geojson", "map_html", "sweeps_page", "sweep_view")},
    **{("dashboards." + e, "POST"): roles("analyst", "supervisor") for e in ("sweep_create", "sweep_preview")},
    # the JSON API
    ("api.create_request", "POST"): "key:api:write",
    ("api.get_request", "GET"): "key:api:read",
    ("api.locate_pin", "GET"): "key:api:read",
    ("api.geocode_address", "GET"): "key:api:read",
    ("api.services", "GET"): "key:api:read",
    # public, read-only map services and the public site
    **{(e, m): EVERYONE for e, m in (
        ("layers.tile", "GET"), ("layers.tile_layers", "GET"),
        ("layers.ogc_landing", "GET"), ("layers.ogc_conformance", "GET"), ("layers.ogc_collections", "GET"),
        ("layers.ogc_collection", "GET"), ("layers.ogc_items", "GET"), ("layers.ogc_item", "GET"),
        ("layers.ogc_api", "GET"), ("layers.ogc_queryables", "GET"),
        ("layers.arcgis_catalog", "GET"), ("layers.arcgis_catalog", "POST"),
        ("layers.arcgis_service", "GET"), ("layers.arcgis_service", "POST"),
        ("layers.arcgis_layer", "GET"), ("layers.arcgis_layer", "POST"),
        ("layers.arcgis_query", "GET"), ("layers.arcgis_query", "POST"),
        ("public.status_map", "GET"), ("public.near_me", "GET"), ("public.find_request", "GET"),
        ("public.request_status", "GET"), ("public.request_card", "GET"), ("public.photo", "GET"),
        ("public.report_form", "GET"), ("public.report_submit", "POST"), ("public.report_questions", "GET"),
        ("public.report_sent", "GET"),
        ("open311.discovery", "GET"), ("open311.services", "GET"), ("open311.service_definition", "GET"),
        ("open311.list_requests", "GET"), ("open311.get_request", "GET"), ("open311.token", "GET"))},
    # Open311 writes need an api_key (tested below), whoever is signed in
    ("open311.create_request", "POST"): "key:open311:write",
    # administration: staff accounts and their sign-in sessions
    **{("admin." + e, "GET"): roles() for e in ("users_page", "user_page")},
    **{("admin." + e, "POST"): roles() for e in (
        "end_session", "sign_out_everywhere", "deactivate", "reactivate", "reset_password")},
    # Twilio webhooks: only with Twilio's signature, never on a session
    **{("channels." + e, "POST"): NOBODY for e in ("sms", "voice", "voice_menu", "voice_status")},
}
# Endpoints whose "key:" rows do not also accept a staff session.
KEY_ONLY = {("open311.create_request", "POST")}

ARGS = {"public_id": None, "fmt": "json", "layer": "requests", "z": 14, "x": 4958, "y": 6060, "name": "requests",
        "fid": "1", "code": "pothole", "sweep_id": 1, "token": "0" * 32, "layer_id": 0,
        "user_id": 0, "session_id": 0}   # no such account: an admin's calls change nobody's sessions
ARGS_BY_ENDPOINT = {
    "agent.outlines": {"layer": "wards"},
    "crew.photo": {"name": "0" * 32}, "crew.photo_thumb": {"name": "0" * 32}, "public.photo": {"name": "0" * 32},
    "layers.arcgis_service": {"name": "requests"},
}
QUERY = {"api.locate_pin": "?lat=42.35&lon=-71.06", "agent.screen_pop": "?from=6175550100",
         "agent.caller_history": "?phone=6175550100", "api.geocode_address": "?q=100+Tremont+St",
         "agent.open_requests": "?bbox=-71.07,42.35,-71.05,42.36", "crew.near_json": "?lat=42.35&lon=-71.06",
         "crew.route_json": "?lat=42.35&lon=-71.06", "public.near_me": "?lat=42.35&lon=-71.06"}


def _rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def test_every_endpoint_is_in_the_matrix(app):
    missing = sorted({f"{r.endpoint} {m} {r.rule}" for r, m in _rules(app) if (r.endpoint, m) not in POLICY})
    assert not missing, "endpoints without an authorization decision in tests/test_authz.py POLICY:\n" + \
        "\n".join(missing)


def _csrf(client):
    page = client.get("/login").get_data(as_text=True)
    m = re.search(r'name="csrf-token" content="([^"]+)"', page) or \
        re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    return m.group(1) if m else ""


def _client(app, engine, role):
    client = app.test_client()
    if role != "anonymous":
        with engine.begin() as c:
            uid = c.scalar(text("SELECT id FROM users WHERE username = :u"), {"u": f"test-{role}"})
            session_id = users.sign_in(c, users.get(c, uid)).get_id()
        with client.session_transaction() as s:  # signed in (the sign-in form is tested elsewhere)
            s["_user_id"] = session_id
            s["_fresh"] = True
    return client, _csrf(client)


def _url(app, rule, public_id):
    values = {**ARGS, "public_id": public_id, **ARGS_BY_ENDPOINT.get(rule.endpoint, {})}
    path = rule.rule
    for arg in rule.arguments:
        path = re.sub(r"<(?:[a-z]+:)?%s>" % arg, str(values[arg]), path)
    return path + QUERY.get(rule.endpoint, "")


def _call(client, token, method, url, headers=None):
    headers = {"X-CSRFToken": token, **(headers or {})}
    if method == "GET":
        return client.get(url, headers=headers)
    return client.post(url, json={}, headers=headers) if "/api/" in url else \
        client.post(url, data={"csrf_token": token}, headers=headers)


def _denied(r):
    return r.status_code in (401, 403) or (r.status_code in (302, 303) and "/login" in r.headers.get("Location", ""))


@pytest.fixture(scope="module")
def public_id(engine):
    with engine.connect() as c:
        return c.scalar(text("SELECT public_id FROM service_requests r JOIN services s ON s.code = r.service_code "
                             "WHERE NOT s.sensitive ORDER BY r.id LIMIT 1"))


@pytest.mark.parametrize("role", ROLES)
def test_matrix(app, engine, staff, role, public_id):
    client, token = _client(app, engine, role)
    wrong = []
    for rule, method in _rules(app):
        policy = POLICY.get((rule.endpoint, method))
        if policy is None or (rule.endpoint, method) in (("auth.logout", "POST"), ("auth.login", "POST")):
            continue  # missing ones fail the test above; logout is tried last; sign-in: test_security.py
        if isinstance(policy, str):
            allowed = role != "anonymous" and (rule.endpoint, method) not in KEY_ONLY
        else:
            allowed = role in policy
        r = _call(client, token, method, _url(app, rule, public_id))
        assert r.status_code < 500, f"{role} {method} {rule.rule}: {r.status_code} {r.get_data(as_text=True)[:200]}"
        if allowed == _denied(r):
            wrong.append(f"{role} {method} {rule.rule}: expected {'allowed' if allowed else 'denied'}, "
                         f"got {r.status_code} {r.headers.get('Location', '')}")
    assert not wrong, "\n".join(wrong)
    r = _call(client, token, "POST", "/logout")
    assert r.status_code == 302
    if role != "anonymous":  # signed out now: a staff page sends to the sign-in page
        assert _denied(client.get("/agent/" if role != "crew" else "/crew/"))


@pytest.fixture(scope="module")
def keys(engine):
    made = {}
    with engine.begin() as c:
        for scope in apikeys.SCOPES:
            made[scope] = apikeys.create(c, f"authz {scope}", (scope,))
    yield {scope: key for scope, (_, key) in made.items()}
    with engine.begin() as c:
        c.execute(text("DELETE FROM api_keys WHERE name LIKE 'authz %'"))


def test_api_keys_only_reach_their_scope(app, keys, public_id):
    client = app.test_client()
    wrong = []
    for rule, method in _rules(app):
        policy = POLICY.get((rule.endpoint, method))
        if not isinstance(policy, str):
            continue
        need = policy.split(":", 1)[1]
        url = _url(app, rule, public_id)
        for scope, key in keys.items():
            if "open311" in rule.endpoint:
                r = client.post(url, data={"api_key": key})
            else:
                r = _call(client, "", method, url, {"X-Api-Key": key})
            assert r.status_code < 500, f"{scope} {method} {url}: {r.status_code}"
            if (scope == need) == _denied(r):
                wrong.append(f"key {scope} {method} {url}: {r.status_code}")
        r = _call(client, "", method, url, {"X-Api-Key": "p311_not-a-real-key"})
        if not _denied(r):
            wrong.append(f"bogus key {method} {url}: {r.status_code}")
    assert not wrong, "\n".join(wrong)


def test_a_session_write_to_the_api_needs_the_csrf_token(app, engine, staff):
    client, token = _client(app, engine, "agent")
    r = client.post("/api/v1/requests", json={"service_code": "pothole", "lat": 42.35, "lon": -71.06})
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
