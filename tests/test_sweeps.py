"""Area sweeps: an area over ward 6 lists every open request inside and none outside; creating a sweep
reassigns them through the lifecycle (events + notify outbox rows); the progress view counts closures."""
import json
import re
from datetime import date, timedelta

import pytest
from shapely.geometry import Point, shape
from sqlalchemy import text

from gis import intake, lifecycle, sweeps
from gis.errors import InvalidInput
from tests.conftest import login

JSON = {"Accept": "application/json"}


def _csrf(client):
    page = client.get("/dashboards/sweeps").get_data(as_text=True)
    return {"X-CSRFToken": re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1), **JSON}


def _ward6(conn):
    return json.loads(conn.scalar(text("SELECT ST_AsGeoJSON(d.geom) "
                                       "FROM districts d JOIN layers l ON l.id = d.layer_id "
                                       "WHERE l.name = 'wards' AND d.code = '6'")))


@pytest.fixture
def quiet_spot(conn):
    """An address point in ward 6 with no open request within 120 m: a sweep there takes only our requests."""
    row = conn.execute(text("""
        SELECT ST_Y(a.geom) AS lat, ST_X(a.geom) AS lon FROM address_points a
          JOIN districts d ON ST_Contains(d.geom, a.geom)
          JOIN layers l ON l.id = d.layer_id AND l.name = 'wards' AND d.code = '6'
         WHERE NOT EXISTS (SELECT 1 FROM service_requests r WHERE r.status <> 'closed'
                             AND ST_DWithin(r.geom::geography, a.geom::geography, 120))
         ORDER BY a.id LIMIT 1""")).one()
    return row.lat, row.lon


def _box(lat, lon, d=0.0004):
    return {"type": "Polygon", "coordinates": [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d],
                                                [lon - d, lat + d], [lon - d, lat - d]]]}


def _request(conn, lat, lon, service="dead-animal", phone=None):
    return intake.submit_request(conn, intake.NewRequest(
        service_code=service, lat=lat, lon=lon, channel="agent", actor="agent:test",
        attributes={"animal_type": "cat"} if service == "animal-generic" else
        {"animal_size": "small", "on_private_property": "no"},
        contact={"phone": phone, "first_name": "Sam"} if phone else {}))


def test_area_over_ward_6_lists_every_open_request_inside_and_none_outside(client, staff, conn):
    login(client, staff["analyst"])
    ward = _ward6(conn)
    resp = client.post("/dashboards/sweeps/preview", json={"area": ward}, headers=_csrf(client))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    found = {r["public_id"] for r in resp.get_json()["requests"]}
    # the same question answered by shapely over every open request (not by PostGIS)
    poly = shape(ward)
    every = conn.execute(text("SELECT public_id, ST_X(geom), ST_Y(geom) FROM service_requests "
                              "WHERE status <> 'closed'")).all()
    inside = {pid for pid, x, y in every if poly.intersects(Point(x, y))}
    assert found and found == inside
    cats = resp.get_json()["categories"]
    assert sum(c["open"] for c in cats) == len(found)
    # picking the district gives the same list
    picked = client.post("/dashboards/sweeps/preview", json={"layer": "wards", "districts": ["6"]},
                         headers=_csrf(client)).get_json()
    assert {r["public_id"] for r in picked["requests"]} == found


@pytest.mark.parametrize("body, field", [({}, "area"), ({"area": {"type": "Point", "coordinates": [0, 0]}}, "area"),
                                         ({"layer": "wards", "districts": ["99"]}, "districts"),
                                         ({"area": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}},
                                          "area")])
def test_bad_areas_are_clear_errors(client, staff, body, field):
    login(client, staff["supervisor"])
    resp = client.post("/dashboards/sweeps/preview", json=body, headers=_csrf(client))
    assert resp.status_code == 400 and resp.get_json()["error"]["field"] == field


def test_preview_needs_csrf_and_the_right_role(client, staff):
    login(client, staff["analyst"])
    assert client.post("/dashboards/sweeps/preview", json={"layer": "wards", "districts": ["6"]}).status_code == 400
    login(client, staff["agent"])
    assert client.get("/dashboards/sweeps").status_code == 403


def test_creating_a_sweep_reassigns_every_request_with_events_and_notifications(client, staff, conn, quiet_spot):
    lat, lon = quiet_spot
    tickets = [_request(conn, lat, lon, phone="617-555-0161"), _request(conn, lat + 0.0001, lon, phone="617-555-0162"),
               _request(conn, lat, lon + 0.0001, service="animal-generic")]
    outside = _request(conn, lat + 0.003, lon, phone="617-555-0163")
    login(client, staff["supervisor"])
    target = (date.today() + timedelta(days=7)).isoformat()
    headers = _csrf(client)
    area = _box(lat, lon)
    preview = client.post("/dashboards/sweeps/preview", json={"area": area}, headers=headers).get_json()
    assert {r["public_id"] for r in preview["requests"]} == {t["public_id"] for t in tickets}
    resp = client.post("/dashboards/sweeps", json={"area": area, "name": "Test sweep", "crew": "sweep-crew-1",
                                                   "target_date": target}, headers=headers)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    sweep_id = resp.get_json()["id"]
    try:
        assert resp.get_json()["taken"] == 3
        ids = [t["id"] for t in tickets]
        crews = conn.execute(text("SELECT r.id, c.code FROM service_requests r JOIN crews c ON c.id = r.crew_id "
                                  "WHERE r.id = ANY(:ids)"), {"ids": ids}).all()
        assert {c for _, c in crews} == {"sweep-crew-1"}
        due = conn.execute(text("SELECT DISTINCT expected_at::date, expected_at::time FROM service_requests "
                                "WHERE id = ANY(:ids)"), {"ids": ids}).all()
        assert [(d.isoformat(), str(t)) for d, t in due] == [(target, "23:59:59")]   # due by the sweep's date
        assert conn.scalar(text("SELECT expected_at::date FROM service_requests WHERE id = :i"),
                           {"i": outside["id"]}).isoformat() != target
        events = conn.execute(text("SELECT request_id, actor, data->>'sweep_id', public_note FROM request_events "
                                   "WHERE kind = 'reassigned' AND request_id = ANY(:ids)"), {"ids": ids}).all()
        assert sorted(e[0] for e in events) == sorted(ids)
        assert all(e[1] == "supervisor:test-supervisor" and e[2] == str(sweep_id) and target in e[3] for e in events)
        notify = conn.execute(text("SELECT (payload->>'request_id')::bigint FROM outbox WHERE topic = 'notify' "
                                   "AND payload->>'kind' = 'reassigned' "
                                   "AND (payload->>'request_id')::bigint = ANY(:ids)"),
                              {"ids": ids + [outside["id"]]}).scalars().all()
        assert sorted(notify) == sorted(ids[:2])   # the two with a caller's phone; nobody to tell on the third
        assert conn.scalar(text("SELECT crew_id IS DISTINCT FROM (SELECT id FROM crews WHERE code = 'sweep-crew-1') "
                                "FROM service_requests WHERE id = :i"), {"i": outside["id"]})

        # progress: one closed of three, in JSON and on the page
        lifecycle.apply(conn, tickets[0]["public_id"], "close", "crew:sweeper", reason="fixed")
        prog = client.get(f"/dashboards/sweeps/{sweep_id}?format=json").get_json()
        assert (prog["taken"], prog["closed"], prog["open"], prog["crew"]) == (3, 1, 2, "sweep-crew-1")
        assert {c["service_code"]: (c["closed"], c["taken"]) for c in prog["categories"]} == \
            {"dead-animal": (1, 2), "animal-generic": (0, 1)}
        page = client.get(f"/dashboards/sweeps/{sweep_id}").get_data(as_text=True)
        assert "1 of 3" in page and "Test sweep" in page
        assert "Test sweep" in client.get("/dashboards/sweeps").get_data(as_text=True)
        login(client, staff["crew"])
        assert client.get(f"/dashboards/sweeps/{sweep_id}").status_code == 403
    finally:
        conn.rollback()
        conn.execute(text("DELETE FROM sweeps WHERE id = :s"), {"s": sweep_id})
        conn.commit()


def test_create_refuses_bad_input_and_writes_nothing(conn, quiet_spot):
    lat, lon = quiet_spot
    before = conn.scalar(text("SELECT count(*) FROM sweeps"))
    area = sweeps.area_sql(conn, polygon=_box(lat, lon))
    tomorrow = date.today() + timedelta(days=1)
    for kwargs, field in [(dict(name="x", crew_code="no-such-crew", target_date=tomorrow), "crew"),
                          (dict(name="x", crew_code="sweep-crew-1", target_date="2001-01-01"), "target_date"),
                          (dict(name="", crew_code="sweep-crew-1", target_date=tomorrow), "name"),
                          (dict(name="x", crew_code="sweep-crew-1", target_date=tomorrow, categories=[]), "categories"),
                          # nothing open there
                          (dict(name="x", crew_code="sweep-crew-1", target_date=tomorrow), "area")]:
        with pytest.raises(InvalidInput) as err:
            sweeps.create(conn, kwargs["name"], area, kwargs["crew_code"], kwargs["target_date"], "analyst:t",
                          kwargs.get("categories"))
        assert err.value.field == field
    assert conn.scalar(text("SELECT count(*) FROM sweeps")) == before


def test_unknown_sweep_is_not_found(client, staff):
    login(client, staff["analyst"])
    assert client.get("/dashboards/sweeps/999999?format=json").status_code == 404
    assert client.get("/dashboards/sweeps/999999").status_code == 404


def test_a_sweep_can_take_only_some_categories(client, staff, conn, quiet_spot):
    lat, lon = quiet_spot
    dead = _request(conn, lat, lon)
    cat = _request(conn, lat, lon + 0.0001, service="animal-generic")
    login(client, staff["analyst"])
    resp = client.post("/dashboards/sweeps", headers=_csrf(client),
                       json={"area": _box(lat, lon), "name": "Dead animals only", "crew": "sweep-crew-1",
                             "target_date": (date.today() + timedelta(days=2)).isoformat(),
                             "categories": ["dead-animal"]})
    assert resp.status_code == 201
    sweep_id = resp.get_json()["id"]
    try:
        prog = client.get(f"/dashboards/sweeps/{sweep_id}?format=json").get_json()
        assert [r["public_id"] for r in prog["requests"]] == [dead["public_id"]]
        crew_of = conn.execute(text("SELECT id, (SELECT code FROM crews WHERE id = crew_id) FROM service_requests "
                                    "WHERE id IN (:a, :b)"), {"a": dead["id"], "b": cat["id"]}).all()
        assert dict(crew_of)[dead["id"]] == "sweep-crew-1" and dict(crew_of)[cat["id"]] != "sweep-crew-1"
    finally:
        conn.rollback()
        conn.execute(text("DELETE FROM sweeps WHERE id = :s"), {"s": sweep_id})
        conn.commit()


def test_callers_never_hear_the_sweeps_internal_name_and_a_ticket_already_with_the_crew_stays(
        client, staff, conn, quiet_spot):
    lat, lon = quiet_spot
    moving = _request(conn, lat, lon, phone="617-555-0171")
    staying = _request(conn, lat + 0.0001, lon, phone="617-555-0172")
    lifecycle.apply(conn, staying["id"], "reassign", "supervisor:test", crew_code="sweep-crew-1")
    before = conn.scalar(text("SELECT max(id) FROM outbox"))
    login(client, staff["supervisor"])
    target = (date.today() + timedelta(days=5)).isoformat()
    name = "QA sweep - crew E13 too slow, do not tell residents"
    resp = client.post("/dashboards/sweeps", headers=_csrf(client),
                       json={"area": _box(lat, lon), "name": name, "crew": "sweep-crew-1", "target_date": target})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    sweep_id = resp.get_json()["id"]
    try:
        events = conn.execute(text("SELECT request_id, kind, public_note, internal_note, data->>'sweep_id' "
                                   "FROM request_events WHERE request_id IN (:a, :b) AND data ? 'sweep_id'"),
                              {"a": moving["id"], "b": staying["id"]}).all()
        assert {(e.request_id, e.kind) for e in events} == {(moving["id"], "reassigned"), (staying["id"], "note")}
        for e in events:
            assert "E13" not in (e.public_note or "") and name in e.internal_note and e[4] == str(sweep_id)
        public = [ev["note"] for r in (moving, staying) for ev in lifecycle.history(conn, r["id"], public=True)]
        assert not [n for n in public if n and "E13" in n]                 # nothing public names the sweep
        moved_note = next(e.public_note for e in events if e.kind == "reassigned")
        assert target in moved_note
        # the caller of the ticket already with the crew is not told it was 'reassigned' to it again
        told = conn.execute(text("SELECT (payload->>'request_id')::bigint FROM outbox WHERE id > :o "
                                 "AND topic = 'notify'"), {"o": before}).scalars().all()
        assert told == [moving["id"]]
        due = conn.execute(text("SELECT expected_at::date FROM service_requests WHERE id IN (:a, :b)"),
                           {"a": moving["id"], "b": staying["id"]}).scalars().all()
        assert {d.isoformat() for d in due} == {target}                    # both due by the sweep's date
        prog = client.get(f"/dashboards/sweeps/{sweep_id}?format=json").get_json()
        assert prog["taken"] == 2
    finally:
        conn.rollback()
        conn.execute(text("DELETE FROM sweeps WHERE id = :s"), {"s": sweep_id})
        conn.commit()


def test_district_picker_lists_districts_in_natural_order_as_the_dashboard_filter_does(client, staff):
    """One list serves both pages (gis.analytics.districts): the picker sorted codes by length, then text,
    so police district A15 came after E5."""
    login(client, staff["analyst"])
    page = client.get("/dashboards/sweeps").get_data(as_text=True)

    def picker(layer):
        found = re.search(rf'<select id="pick-{layer}"[^>]*>(.*?)</select>', page, re.S).group(1)
        return re.findall(r'<option value="([^"]+)"', found)
    assert picker("police_districts") == ["A1", "A7", "A15", "B2", "B3", "C6", "C11", "D4", "D14", "E5", "E13", "E18"]
    assert picker("wards") == [str(n) for n in range(1, 23)]
    dashboard = client.get("/dashboards/").get_data(as_text=True)
    police = re.search(r'<optgroup label="police_districts" data-layer="police_districts">(.*?)</optgroup>',
                       dashboard, re.S).group(1)
    assert re.findall(r'<option value="([^"]+)"', police) == picker("police_districts")
