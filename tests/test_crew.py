"""Crew core and routes: KNN equals brute force, route planning, actions, authorization, photos."""
import io
import random
import re
import uuid
from types import SimpleNamespace

import pytest
from PIL import Image
from sqlalchemy import text

from gis import crew, crew_route, lifecycle, media
from gis.errors import Conflict, Forbidden, InvalidInput
from gis.intake import NewRequest, submit_request
from tests.conftest import login

STRAY_DOG = (42.3345, -71.0398)      # scenario 5: 615 E Fourth St, police district C6


def _crew_id(conn, code):
    return conn.execute(text("SELECT id FROM crews WHERE code = :c"), {"c": code}).scalar_one()


def _user(conn, role="crew", crews=("animal-control-c6",), username="test-crew"):
    return SimpleNamespace(role=role, username=username, crew_ids=tuple(_crew_id(conn, c) for c in crews))


def _dog(conn, lat=STRAY_DOG[0], lon=STRAY_DOG[1], phone="+16175550142"):
    return submit_request(conn, NewRequest(
        service_code="animal-generic", lat=lat, lon=lon, attributes={"animal_type": "dog"},
        description="Stray dog by the park",
        contact={"first_name": "Ann", "last_name": "Caller", "phone": phone},
        channel="agent", actor="agent:test"))


def _status(conn, request_id):
    return conn.execute(text("SELECT status FROM service_requests WHERE id = :i"), {"i": request_id}).scalar()


def _brute(conn, lat, lon, limit, crew_ids=None, service=None, overdue=False):
    rows = conn.execute(text("""
        SELECT id, ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) AS m
          FROM service_requests r
         WHERE status <> 'closed' AND (:all OR crew_id = ANY(:crews))
           AND (CAST(:service AS text) IS NULL OR service_code = :service)
           AND (NOT :overdue OR expected_at < now())"""),
                        {"lat": lat, "lon": lon, "all": crew_ids is None, "crews": list(crew_ids or []),
                         "service": service, "overdue": overdue}).all()
    return [(r.id, r.m) for r in sorted(rows, key=lambda r: (r.m, r.id))[:limit]]


def test_knn_equals_brute_force_on_random_points(conn):
    rng = random.Random(5)
    box = conn.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                            "(SELECT ST_Extent(geom) e FROM service_requests "
                            "WHERE status <> 'closed') x")).one()
    c6 = _crew_id(conn, "animal-control-c6")
    services = [r[0] for r in conn.execute(text("SELECT DISTINCT service_code FROM service_requests "
                                                "WHERE status <> 'closed' LIMIT 5"))]
    checked = 0
    for i in range(60):
        # inside the city, and some far outside it (the degree/metre distortion is largest there)
        if i % 6 == 5:
            lat, lon = rng.uniform(-60, 70), rng.uniform(-179, 179)
        else:
            lat, lon = rng.uniform(box[1], box[3]), rng.uniform(box[0], box[2])
        limit = rng.choice([1, 5, 20, 50, 200])
        kwargs = [{}, {"crew_ids": [c6]}, {"service": rng.choice(services)}, {"overdue": True}][i % 4]
        got = crew.nearest_ids(conn, lat, lon, limit=limit, **kwargs)
        want = _brute(conn, lat, lon, limit, **kwargs)
        assert [g[0] for g in got] == [w[0] for w in want], (lat, lon, limit, kwargs)
        assert all(abs(g[1] - w[1]) < 1e-6 for g, w in zip(got, want))
        checked += len(got)
    assert checked > 1000


def test_knn_uses_the_partial_open_index_even_for_one_crew(conn):
    c6 = _crew_id(conn, "animal-control-c6")
    for all_crews, crews in ((True, []), (False, [c6])):
        conn.rollback()
        with conn.begin():
            plan = "\n".join(r[0] for r in conn.execute(text(crew._KNN_ONLY + "EXPLAIN " + crew.KNN_SELECT), {
                "lat": 42.33, "lon": -71.04, "all_crews": all_crews, "crew_ids": crews, "service": None,
                "overdue": False, "cand": 64}))
        assert "Index Scan using service_requests_open_geom_gist" in plan and "Order By" in plan, plan
        assert "Sort" not in plan.replace("Order By", ""), plan
    # and the planner settings are back to normal after a near-me query in the same transaction
    crew.nearest_ids(conn, 42.33, -71.04, limit=5, crew_ids=[c6])
    settings = text("SELECT current_setting('enable_sort'), current_setting('enable_bitmapscan')")
    assert conn.execute(settings).one() == ("on", "on")
    conn.rollback()


def test_knn_bound_fallback_is_exact_where_candidates_crowd_one_side(conn):
    # 70 tickets ~222 m north (0.0020°) and one ~213 m east (0.0026°): in degrees the northern crowd
    # fills the whole KNN candidate set, in metres the eastern one is nearest. Built in a transaction
    # that is rolled back, with a crew of their own so nothing else competes.
    crew_id = conn.execute(text("INSERT INTO crews (code, name) VALUES ('test-knn', 'KNN test') "
                                "RETURNING id")).scalar()
    insert = text("INSERT INTO service_requests (service_code, geom, channel, crew_id) VALUES "
                  "('animal-generic', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'api', :c) RETURNING id")
    for k in range(70):
        conn.execute(insert, {"lat": 42.3345 + 0.0020 + k * 1e-6, "lon": -71.0398, "c": crew_id})
    east = conn.execute(insert, {"lat": 42.3345, "lon": -71.0398 + 0.0026, "c": crew_id}).scalar()
    try:
        by_degrees = conn.execute(text("SELECT id FROM service_requests WHERE crew_id = :c ORDER BY geom <-> "
                                       "ST_SetSRID(ST_MakePoint(-71.0398, 42.3345), 4326) LIMIT 64"),
                                  {"c": crew_id}).scalars().all()
        assert east not in by_degrees               # the plain degree KNN would miss it
        got = crew.nearest_ids(conn, 42.3345, -71.0398, limit=1, crew_ids=[crew_id])
        assert got[0][0] == east
        for limit in (1, 2, 10, 71, 80):
            assert crew.nearest_ids(conn, 42.3345, -71.0398, limit=limit, crew_ids=[crew_id]) == \
                _brute(conn, 42.3345, -71.0398, limit, crew_ids=[crew_id])
    finally:
        conn.rollback()


def test_near_me_cards_and_scope(conn):
    ticket = _dog(conn)
    user = _user(conn)
    cards = crew.near_me(conn, user, *STRAY_DOG, scope="mine", limit=10)
    assert cards[0]["public_id"] == ticket["public_id"] and cards[0]["distance_m"] < 1
    assert all(c["crew"]["code"] == "animal-control-c6" for c in cards)
    assert [c["distance_m"] for c in cards] == sorted(c["distance_m"] for c in cards)
    assert cards[0]["sla"] in ("on_time", "due_soon", "no_sla") and cards[0]["age_hours"] < 1
    everyone = crew.near_me(conn, user, *STRAY_DOG, scope="all", limit=10)
    assert {c["crew"]["code"] for c in everyone if c["crew"]} - {"animal-control-c6"}
    with pytest.raises(InvalidInput):
        crew.near_me(conn, user, "nan", -71, scope="all")
    with pytest.raises(InvalidInput):
        crew.near_me(conn, user, 42, -71, scope="everyone")


def test_route_is_nearest_neighbour_improved_by_two_opt(conn):
    rng = random.Random(7)
    for _ in range(12):
        _dog(conn, lat=42.3345 + rng.uniform(-0.003, 0.002), lon=-71.0398 + rng.uniform(-0.008, 0.008))
    user = _user(conn)
    plan = crew_route.plan_route(conn, user, *STRAY_DOG)
    open_ids = {r[0] for r in conn.execute(text("SELECT public_id FROM service_requests "
                                                "WHERE status <> 'closed' "
                                                "AND crew_id = :c"), {"c": user.crew_ids[0]})}
    assert {s["public_id"] for s in plan["stops"]} == open_ids or len(plan["stops"]) == crew_route.ROUTE_MAX_STOPS
    assert plan["total_m"] <= plan["nearest_neighbour_m"] + 0.1
    assert abs(sum(s["leg_m"] for s in plan["stops"]) - plan["total_m"]) < 1
    # 2-opt leaves no improving reversal; the legs are geodesic metres
    pts = [STRAY_DOG] + [(s["lat"], s["lon"]) for s in plan["stops"]]
    m = crew_route._distance_matrix(pts)
    order = list(range(len(pts)))
    assert crew_route.two_opt(m, order) == order or crew_route.path_length(m, crew_route.two_opt(m, order)) >= \
        crew_route.path_length(m, order) - 1e-3
    # on a tiny instance the 2-opt path is no worse than the best of every permutation by more than NN
    from itertools import permutations
    small = pts[:7]
    ms = crew_route._distance_matrix(small)
    best = min(crew_route.path_length(ms, [0, *p]) for p in permutations(range(1, len(small))))
    two = crew_route.path_length(ms, crew_route.two_opt(ms, crew_route.nearest_neighbour(ms)))
    assert best <= two <= crew_route.path_length(ms, crew_route.nearest_neighbour(ms)) + 1e-6


def _jpeg(size=(64, 48), exif=None, colour=(200, 30, 30)):
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", exif=exif or Image.Exif())
    return buf.getvalue()


def _exif_rotated_with_gps():
    exif = Image.Exif()
    exif[0x0112] = 6                  # orientation: rotate 90° CW to display
    exif[0x010F] = "PhoneMaker"       # camera make: must not survive
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (42.0, 20.0, 4.2), 3: "W", 4: (71.0, 2.0, 23.28)})
    return exif


def test_photo_is_reencoded_upright_without_metadata(tmp_path):
    photo = media.save_photo(_jpeg((80, 40), _exif_rotated_with_gps()), tmp_path)
    full, thumb = media.paths(tmp_path, photo.name)
    with Image.open(full) as img:
        assert img.format == "JPEG" and img.size == (40, 80)          # turned upright
        assert not img.getexif() and "exif" not in img.info
    assert thumb.exists()
    assert photo.taken_at == {"lat": pytest.approx(42.3345, abs=1e-4),
                              "lon": pytest.approx(-71.0398, abs=1e-4)}
    assert b"PhoneMaker" not in full.read_bytes()


@pytest.mark.parametrize("data,problem", [(b"", "empty"), (b"GIF89a" + b"\0" * 100, "not a readable"),
                                          (b"%PDF-1.4 hello", "not a readable"),
                                          (b"\xff" * (media.MAX_BYTES + 1), "larger")])
def test_bad_photos_are_refused(tmp_path, data, problem):
    with pytest.raises(InvalidInput, match=problem):
        media.save_photo(data, tmp_path)
    assert not list(tmp_path.iterdir())


def test_photo_names_cannot_escape_the_media_dir(tmp_path):
    for name in ("../etc/passwd", "a" * 32 + "/..", "", None, "ABCDEF" * 6):
        with pytest.raises(InvalidInput):
            media.paths(tmp_path, name)


def test_crew_member_cannot_act_on_another_crews_ticket(conn, tmp_path):
    other = submit_request(conn, NewRequest(service_code="animal-generic", lat=42.3601, lon=-71.0589,
                                            attributes={"animal_type": "cat"}, channel="agent"))
    assert other["crew"]["code"] != "animal-control-c6"
    user = _user(conn)
    with pytest.raises(Forbidden, match=rf"another crew \({re.escape(other['crew']['name'])}\)"):
        crew.act(conn, user, other["public_id"], "close", key=str(uuid.uuid4()), reason="fixed")
    assert _status(conn, other["id"]) == "open"
    boss = _user(conn, role="supervisor", crews=(), username="test-supervisor")
    done = crew.act(conn, boss, other["public_id"], "accept", key=str(uuid.uuid4()))
    assert done["status"] == "acknowledged"


def test_actions_are_events_with_position_and_idempotent(conn, tmp_path):
    ticket = _dog(conn)
    user = _user(conn)
    key = str(uuid.uuid4())
    crew.act(conn, user, ticket["public_id"], "accept", key=key, lat=42.3340, lon=-71.0400)
    again = crew.act(conn, user, ticket["public_id"], "accept", key=key)
    assert again["repeated"] is True
    pos = conn.execute(text("SELECT ST_Y(last_position), ST_X(last_position), "
                            "last_seen_at > now() - interval '1 min' "
                            "FROM crews WHERE code = 'animal-control-c6'")).one()
    assert pos == (pytest.approx(42.3340), pytest.approx(-71.0400), True)
    crew.act(conn, user, ticket["public_id"], "note", key=str(uuid.uuid4()), internal_note="Gate code 1234")
    close_key = str(uuid.uuid4())
    done = crew.act(conn, user, ticket["public_id"], "close", key=close_key, reason="fixed",
                    note="The dog was taken to the shelter.", photo=_jpeg(exif=_exif_rotated_with_gps()),
                    media_dir=tmp_path)
    assert done["status"] == "closed"
    assert crew.act(conn, user, ticket["public_id"], "close", key=close_key, reason="fixed")["repeated"]
    events = conn.execute(text("SELECT kind, actor, media, data FROM request_events WHERE request_id = :i "
                               "ORDER BY id"), {"i": ticket["id"]}).all()
    assert [e.kind for e in events] == ["created", "acknowledged", "note", "closed"]
    assert all(e.actor == "crew:test-crew" for e in events[1:])
    closed = events[-1]
    assert closed.media and (tmp_path / f"{closed.media}.jpg").exists()
    assert closed.data["photo"]["taken_at"]["lat"] == pytest.approx(42.3345, abs=1e-4)
    # the caller hears of the closure
    notify = text("SELECT count(*) FROM outbox WHERE topic = 'notify' AND payload ->> 'kind' = 'closed' "
                  "AND (payload ->> 'request_id')::bigint = :i")
    assert conn.execute(notify, {"i": ticket["id"]}).scalar() == 1
    # internal notes, photo location and actors stay out of the public history
    public = lifecycle.history(conn, ticket["id"], public=True)
    text_public = repr(public)
    assert "Gate code" not in text_public and "taken_at" not in text_public and "test-crew" not in text_public
    assert any(e["note"] == "The dog was taken to the shelter." for e in public)


def test_two_replays_racing_close_once(engine):
    """The same queued closure sent twice at once (two tabs, a retry): one closure, both answered."""
    import threading
    with engine.connect() as c:
        ticket = _dog(c)
        user = _user(c)
    key, results, errors = str(uuid.uuid4()), [], []
    barrier = threading.Barrier(2)

    def send():
        try:
            with engine.connect() as c:
                barrier.wait()
                results.append(crew.act(c, user, ticket["public_id"], "close", key=key, reason="fixed",
                                        note="Done"))
        except Exception as exc:   # noqa: BLE001 - collected for the assertion
            errors.append(exc)
    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sorted(r["repeated"] for r in results) == [False, True]
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM request_events "
                              "WHERE request_id = :i AND kind = 'closed'"),
                         {"i": ticket["id"]}).scalar() == 1


def test_reassign_needs_a_reason_then_hands_the_ticket_over(conn):
    ticket = _dog(conn)
    user = _user(conn)
    with pytest.raises(InvalidInput, match="why"):
        crew.act(conn, user, ticket["public_id"], "reassign", key=uuid.uuid4().hex,
                 crew_code="animal-control-a1")
    key = uuid.uuid4().hex
    moved = crew.act(conn, user, ticket["public_id"], "reassign", key=key, crew_code="animal-control-a1",
                     reason="Dog ran into A1's area")
    assert moved["crew"]["code"] == "animal-control-a1"
    event = conn.execute(text("SELECT internal_note, actor FROM request_events WHERE request_id = :i "
                              "AND kind = 'reassigned'"), {"i": ticket["id"]}).one()
    assert event == ("Reassigned: Dog ran into A1's area", "crew:test-crew")
    # the replay of the same action is answered even though the ticket is no longer this crew's …
    assert crew.act(conn, user, ticket["public_id"], "reassign", key=key, crew_code="animal-control-a1",
                    reason="Dog ran into A1's area")["repeated"] is True
    # … but a new action on it is not allowed any more
    with pytest.raises(Forbidden):
        crew.act(conn, user, ticket["public_id"], "close", key=uuid.uuid4().hex, reason="fixed")
    # a key cannot be borrowed for another ticket
    other = _dog(conn)
    with pytest.raises(Conflict):
        crew.act(conn, user, other["public_id"], "accept", key=key)


def test_refused_action_keeps_no_photo(conn, tmp_path):
    ticket = _dog(conn)
    user = _user(conn)
    with pytest.raises(InvalidInput):
        crew.act(conn, user, ticket["public_id"], "close", key=str(uuid.uuid4()), reason="bogus",
                 photo=_jpeg(), media_dir=tmp_path)
    assert not list(tmp_path.glob("*.jpg"))


# --- through the web layer ---------------------------------------------------------------------

def _csrf(client, path="/crew/"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def test_crew_pages_need_a_crew_or_supervisor_role(client, staff):
    assert client.get("/crew/").status_code in (302, 401)
    login(client, staff["analyst"])
    assert client.get("/crew/").status_code == 403
    assert client.get("/crew/near.json?lat=42.33&lon=-71.04").status_code == 403


def test_near_json_and_ticket_page(client, staff, conn):
    ticket = submit_request(conn, NewRequest(
        service_code="animal-generic", lat=STRAY_DOG[0], lon=STRAY_DOG[1], attributes={"animal_type": "dog"},
        description="Stray dog by the park", address="by the bench near the gate",   # the caller's words
        contact={"first_name": "Ann", "last_name": "Caller", "phone": "+16175550142"},
        channel="agent", actor="agent:test"))
    crew.act(conn, _user(conn), ticket["public_id"], "note", key=str(uuid.uuid4()),
             internal_note="Dog is shy")
    login(client, staff["crew"])
    body = client.get(f"/crew/near.json?lat={STRAY_DOG[0]}&lon={STRAY_DOG[1]}").get_json()
    assert body["tickets"][0]["public_id"] == ticket["public_id"]
    bad = client.get("/crew/near.json?lat=abc&lon=-71", headers={"Accept": "application/json"})
    assert bad.status_code == 400 and bad.get_json()["field"] == "lat"
    page = client.get(f"/crew/tickets/{ticket['public_id']}").get_data(as_text=True)
    assert "Stray dog by the park" in page and "Dog is shy" in page and "Ann Caller" in page
    assert "615 E Fourth St" in page and "by the bench near the gate" in page
    assert "+16175550142" not in page and f"geo:{STRAY_DOG[0]:.6f},{STRAY_DOG[1]:.6f}" in page
    assert client.get("/crew/tickets/nope").status_code == 404


def test_near_json_filters(client, staff, conn):
    _dog(conn)
    login(client, staff["crew"])
    base = f"/crew/near.json?lat={STRAY_DOG[0]}&lon={STRAY_DOG[1]}&limit=30"
    overdue = client.get(base + "&scope=all&overdue=1").get_json()["tickets"]
    assert overdue and all(t["sla"] == "overdue" for t in overdue)
    dead = client.get(base + "&scope=all&service=dead-animal").get_json()["tickets"]
    assert all(t["service_code"] == "dead-animal" for t in dead)
    everyone = client.get(base + "&scope=all").get_json()["tickets"]
    assert len({t["crew"]["code"] for t in everyone if t["crew"]}) > 1
    assert client.get(base + "&scope=nobody", headers={"Accept": "application/json"}).status_code == 400


def test_other_crews_ticket_is_read_only_without_notes(client, staff, conn):
    other = submit_request(conn, NewRequest(service_code="animal-generic", lat=42.3601, lon=-71.0589,
                                            attributes={"animal_type": "cat"}, channel="agent",
                                            address="behind the blue fence",
                                            contact={"first_name": "Zed", "phone": "+16175550199"}))
    boss = _user(conn, role="supervisor", crews=(), username="test-supervisor")
    crew.act(conn, boss, other["public_id"], "note", key=str(uuid.uuid4()), internal_note="Secret gate code")
    login(client, staff["crew"])
    page = client.get(f"/crew/tickets/{other['public_id']}").get_data(as_text=True)
    assert "Secret gate code" not in page and "Zed" not in page and "close-form" not in page
    assert "behind the blue fence" not in page
    token = _csrf(client)
    r = client.post(f"/crew/tickets/{other['public_id']}/actions", headers={"X-CSRFToken": token,
                    "Accept": "application/json"},
                    data={"action": "close", "reason": "fixed", "key": "k-" + uuid.uuid4().hex})
    assert r.status_code == 403 and r.get_json()["error"]
    assert _status(conn, other["id"]) == "open"


def test_close_with_photo_over_http_and_photo_route(client, staff, conn, app, tmp_path):
    app.config["MEDIA_DIR"] = str(tmp_path)
    ticket = _dog(conn)
    login(client, staff["crew"])
    token = _csrf(client)
    headers = {"X-CSRFToken": token, "Accept": "application/json"}
    url = f"/crew/tickets/{ticket['public_id']}/actions"
    no_csrf = client.post(url, data={"action": "close", "key": "x"}, headers={"Accept": "application/json"})
    assert no_csrf.status_code == 400
    r = client.post(url, headers=headers, content_type="multipart/form-data",
                    data={"action": "close", "reason": "fixed", "note": "Done",
                          "key": "key-1-" + ticket["public_id"],
                          "lat": "42.3344", "lon": "-71.0399", "photo": (io.BytesIO(_jpeg()), "dog.jpg")})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["status"] == "closed" and r.get_json()["repeated"] is False
    name = conn.execute(text("SELECT media FROM request_events WHERE request_id = :i AND kind = 'closed'"),
                        {"i": ticket["id"]}).scalar()
    got = client.get(f"/crew/photos/{name}.thumb.jpg")
    assert got.status_code == 200 and got.mimetype == "image/jpeg"
    assert client.get("/crew/photos/" + "0" * 32 + ".jpg").status_code == 404
    assert media.public_photo_allowed(conn, name) is True
    noted = crew.act(conn, _user(conn), ticket["public_id"], "note", key=uuid.uuid4().hex,
                     internal_note="inside",
                     photo=_jpeg(), media_dir=tmp_path)
    assert noted["status"] == "closed"
    inner = conn.execute(text("SELECT media FROM request_events WHERE request_id = :i AND kind = 'note'"),
                         {"i": ticket["id"]}).scalar()
    assert media.public_photo_allowed(conn, inner) is False      # an internal note's photo stays internal
    assert client.get(f"/crew/photos/{inner}.jpg").status_code == 200
    conn.execute(text("UPDATE services SET sensitive = true WHERE code = 'animal-generic'"))
    assert media.public_photo_allowed(conn, name) is False
    conn.rollback()
    client.post("/logout", data={"csrf_token": token})
    assert client.get(f"/crew/photos/{name}.jpg").status_code in (302, 401)


def test_bad_upload_is_a_clear_error(client, staff, conn, app, tmp_path):
    app.config["MEDIA_DIR"] = str(tmp_path)
    ticket = _dog(conn)
    login(client, staff["crew"])
    r = client.post(f"/crew/tickets/{ticket['public_id']}/actions",
                    headers={"X-CSRFToken": _csrf(client), "Accept": "application/json"},
                    content_type="multipart/form-data",
                    data={"action": "close", "reason": "fixed", "key": uuid.uuid4().hex,
                          "photo": (io.BytesIO(b"<svg onload=alert(1)>"), "x.svg")})
    assert r.status_code == 400 and r.get_json()["field"] == "photo"
    assert _status(conn, ticket["id"]) == "open"


def test_public_never_gets_a_sensitive_closure_photo(client, conn, app, tmp_path):
    if not any(r.rule == "/photos/<name>.jpg" for r in app.url_map.iter_rules()):
        pytest.skip("the public site's photo route is not in this app")
    saved = app.config["MEDIA_DIR"]
    app.config["MEDIA_DIR"] = str(tmp_path)
    ticket = _dog(conn)
    crew.act(conn, _user(conn), ticket["public_id"], "close", key=uuid.uuid4().hex, reason="fixed",
             photo=_jpeg(), media_dir=tmp_path)
    name = conn.execute(text("SELECT media FROM request_events WHERE request_id = :i AND kind = 'closed'"),
                        {"i": ticket["id"]}).scalar()
    original = conn.execute(text("SELECT sensitive FROM services WHERE code = 'animal-generic'")).scalar()
    conn.rollback()
    try:
        assert client.get(f"/photos/{name}.jpg").status_code == 200          # a stray dog is not sensitive
        conn.execute(text("UPDATE services SET sensitive = true WHERE code = 'animal-generic'"))
        conn.commit()
        assert client.get(f"/photos/{name}.jpg").status_code == 404
        assert client.get(f"/crew/photos/{name}.jpg").status_code in (302, 401)   # staff only, signed in
    finally:
        conn.rollback()
        conn.execute(text("UPDATE services SET sensitive = :s WHERE code = 'animal-generic'"),
                     {"s": original})
        conn.commit()
        app.config["MEDIA_DIR"] = saved


def test_crew_notes_and_names_stay_off_public_outputs(client, conn, app):
    ticket = _dog(conn)
    user = _user(conn)
    crew.act(conn, user, ticket["public_id"], "note", key=uuid.uuid4().hex, internal_note="Gate code 4711")
    crew.act(conn, user, ticket["public_id"], "close", key=uuid.uuid4().hex, reason="fixed",
             note="The dog is safe at the shelter.", internal_note="Bitten, see incident 99")
    rules = {r.rule for r in app.url_map.iter_rules()}
    pages = [(rule, url) for rule, url in (
        ("/requests/<public_id>", f"/requests/{ticket['public_id']}"),
        ("/requests/<public_id>.json", f"/requests/{ticket['public_id']}.json"),
        ("/open311/v2/requests/<public_id>.<fmt>", f"/open311/v2/requests/{ticket['public_id']}.json"),
        ("/open311/v2/requests/<public_id>.<fmt>", f"/open311/v2/requests/{ticket['public_id']}.xml"),
    ) if rule in rules]
    if not pages:
        pytest.skip("no public request page in this app yet")
    for _, url in pages:
        body = client.get(url).get_data(as_text=True)
        for secret in ("Gate code 4711", "Bitten", "test-crew", "Ann Caller", "6175550142"):
            assert secret not in body, (url, secret)
    assert "The dog is safe at the shelter." in client.get(pages[0][1]).get_data(as_text=True)


def test_supervisor_without_a_crew_sees_all_crews_and_no_route_tab(client, staff, conn):
    ticket = _dog(conn)
    login(client, staff["supervisor"])
    page = client.get("/crew/").get_data(as_text=True)
    assert re.search(r'id="tab-route"[^>]*disabled', page)
    body = client.get(f"/crew/near.json?lat={STRAY_DOG[0]}&lon={STRAY_DOG[1]}").get_json()
    assert body["tickets"][0]["public_id"] == ticket["public_id"]
    assert len({t["crew"]["code"] for t in body["tickets"] if t["crew"]}) > 1     # every crew's work
    assert client.get(f"/crew/route.json?lat={STRAY_DOG[0]}&lon={STRAY_DOG[1]}").get_json()["stops"] == []


def test_an_action_taken_by_someone_else_is_refused_and_kept(client, staff, conn):
    """A page left open by one user while another signs in on the same browser: the action names who
    took it, and the server does not record it under the new user's name."""
    ticket = _dog(conn)
    login(client, staff["supervisor"])
    url = f"/crew/tickets/{ticket['public_id']}/actions"
    headers = {"X-CSRFToken": _csrf(client), "Accept": "application/json"}
    r = client.post(url, headers=headers, data={"action": "accept", "key": uuid.uuid4().hex, "user": staff["crew"]})
    assert r.status_code == 409 and r.get_json()["error"] == "other_user"
    assert _status(conn, ticket["id"]) == "open"
    r = client.post(url, headers=headers, data={"action": "accept", "key": uuid.uuid4().hex,
                                                "user": staff["supervisor"]})
    assert r.status_code == 200 and _status(conn, ticket["id"]) == "acknowledged"
    page = client.get(f"/crew/tickets/{ticket['public_id']}").get_data(as_text=True)
    assert f'"user": "{staff["supervisor"]}"' in page      # the page knows who it acts for


def _set_times(conn, request_id, **ago):
    """Move a ticket's times into the past: requested_at / expected_at / closed_at = now() - N hours."""
    for column, hours in ago.items():
        conn.execute(text(f"UPDATE service_requests SET {column} = now() - make_interval(hours => :h) "
                          "WHERE id = :i"), {"h": hours, "i": request_id})
    conn.commit()


def test_a_ticket_closed_before_its_due_date_is_not_overdue(client, staff, conn):
    in_time, late, still_open = _dog(conn), _dog(conn), _dog(conn)
    user = _user(conn)
    for t in (in_time, late):
        crew.act(conn, user, t["public_id"], "close", key=uuid.uuid4().hex, reason="fixed")
    _set_times(conn, in_time["id"], requested_at=30 * 24, closed_at=5 * 24, expected_at=2 * 24)
    _set_times(conn, late["id"], requested_at=30 * 24, closed_at=24, expected_at=2 * 24)
    _set_times(conn, still_open["id"], requested_at=30 * 24, expected_at=2 * 24)
    assert crew.ticket_detail(conn, user, in_time["public_id"])["sla"] == "closed_in_time"
    assert crew.ticket_detail(conn, user, late["public_id"])["sla"] == "closed_late"
    assert crew.ticket_detail(conn, user, still_open["public_id"])["sla"] == "overdue"
    login(client, staff["crew"])

    def head(t):
        page = client.get(f"/crew/tickets/{t['public_id']}").get_data(as_text=True)
        return " ".join(re.search(r'<header class="ticket-head".*?</header>', page, re.S).group(0).split())
    closed_in_time = head(in_time)
    assert "overdue" not in closed_in_time and "closed in time" in closed_in_time
    assert "closed after 25 d" in closed_in_time and " h old" not in closed_in_time   # ages as the list shows them
    assert "Due " in closed_in_time and "Fixed / done" in closed_in_time
    closed_late = head(late)
    assert "closed late" in closed_late and "overdue" not in closed_late and "closed after 29 d" in closed_late
    open_late = head(still_open)
    assert "overdue" in open_late and "30 d old" in open_late and "Due " in open_late


@pytest.mark.parametrize("hours, shown", [(0.2, "< 1 h"), (5.4, "5 h"), (47.4, "47 h"), (50, "2 d"), (30 * 24, "30 d")])
def test_ages_read_as_on_the_list(hours, shown):
    assert crew.format_age(hours) == shown


def test_ticket_state_follows_the_ticket_without_showing_callers(client, staff, conn):
    ticket = _dog(conn)
    login(client, staff["crew"])
    state = client.get(f"/crew/tickets/{ticket['public_id']}/state").get_json()
    assert (state["status"], state["may_act"], state["crew_code"]) == ("open", True, "animal-control-c6")
    boss = _user(conn, role="supervisor", crews=(), username="test-supervisor")
    crew.act(conn, boss, ticket["public_id"], "reassign", key=uuid.uuid4().hex, crew_code="animal-control-a1",
             reason="Closer to A1")
    state = client.get(f"/crew/tickets/{ticket['public_id']}/state").get_json()
    assert (state["may_act"], state["crew_code"]) == (False, "animal-control-a1")
    assert "you can see it, not change it" in state["head"] and "reassigned" in state["history"]
    assert "Ann Caller" not in repr(state) and "Closer to A1" not in state["history"]
    viewed = conn.execute(text("SELECT count(*) FROM contact_audit WHERE request_id = :i AND context = 'crew.ticket'"),
                          {"i": ticket["id"]}).scalar()
    assert viewed == 0                      # no caller shown, nothing to audit
    login(client, staff["analyst"])
    assert client.get(f"/crew/tickets/{ticket['public_id']}/state").status_code == 403


# --- supervisors: reopen ("not fixed") and duplicates ---------------------------------------------

def _boss(conn):
    return _user(conn, role="supervisor", crews=(), username="test-supervisor")


def test_a_supervisor_reopens_a_closed_ticket_and_its_callers_hear(conn):
    ticket = _dog(conn)
    crew.act(conn, _user(conn), ticket["public_id"], "close", key=uuid.uuid4().hex, reason="fixed")
    with pytest.raises(Forbidden):                       # a crew member cannot reopen
        crew.act(conn, _user(conn), ticket["public_id"], "reopen", key=uuid.uuid4().hex, reason="Still there")
    with pytest.raises(InvalidInput, match="why"):
        crew.act(conn, _boss(conn), ticket["public_id"], "reopen", key=uuid.uuid4().hex)
    key = uuid.uuid4().hex
    done = crew.act(conn, _boss(conn), ticket["public_id"], "reopen", key=key, reason="Caller says the dog is back",
                    note="We are sending the crew again.")
    assert done["status"] == "open" and done["repeated"] is False
    assert crew.act(conn, _boss(conn), ticket["public_id"], "reopen", key=key, reason="x")["repeated"] is True
    event = conn.execute(text("SELECT public_note, internal_note, actor FROM request_events WHERE request_id = :i "
                              "AND kind = 'reopened'"), {"i": ticket["id"]}).one()
    assert event == ("We are sending the crew again.", "Reopened: Caller says the dog is back",
                     "supervisor:test-supervisor")
    told = conn.execute(text("SELECT count(*) FROM outbox WHERE topic = 'notify' AND payload->>'kind' = 'reopened' "
                             "AND (payload->>'request_id')::bigint = :i"), {"i": ticket["id"]}).scalar()
    assert told == 1
    with pytest.raises(Conflict):                        # an open ticket cannot be reopened
        crew.act(conn, _boss(conn), ticket["public_id"], "reopen", key=uuid.uuid4().hex, reason="again")


def test_a_supervisor_closes_a_duplicate_naming_the_original(conn):
    original, copy = _dog(conn), _dog(conn, phone="+16175550143")
    with pytest.raises(Forbidden):
        crew.mark_duplicate(conn, _user(conn), copy["public_id"], original["public_id"], key=uuid.uuid4().hex)
    with pytest.raises(InvalidInput):
        crew.mark_duplicate(conn, _boss(conn), copy["public_id"], copy["public_id"], key=uuid.uuid4().hex)
    with pytest.raises(InvalidInput):
        crew.mark_duplicate(conn, _boss(conn), copy["public_id"], " # ", key=uuid.uuid4().hex)
    key = uuid.uuid4().hex
    done = crew.mark_duplicate(conn, _boss(conn), copy["public_id"], f"#{original['public_id']}", key=key)
    assert done["status"] == "closed" and done["repeated"] is False
    again = crew.mark_duplicate(conn, _boss(conn), copy["public_id"], original["public_id"], key=key)
    assert again["repeated"] is True                     # a replayed action, not an error
    row = conn.execute(text("SELECT closure_reason, duplicate_of FROM service_requests WHERE id = :i"),
                       {"i": copy["id"]}).one()
    assert row == ("duplicate", original["id"])
    phones = conn.execute(text("SELECT phone FROM contacts WHERE request_id = :i"), {"i": original["id"]}).scalars()
    assert "+16175550143" in set(phones)                 # the copy's caller now follows the original
    detail = crew.ticket_detail(conn, _boss(conn), copy["public_id"])
    assert detail["duplicate_of_public_id"] == original["public_id"]


def test_reopen_and_duplicate_through_the_crew_page(client, staff, conn):
    original, copy = _dog(conn), _dog(conn)
    login(client, staff["crew"])
    page = client.get(f"/crew/tickets/{copy['public_id']}").get_data(as_text=True)
    assert "duplicate-form" not in page and "reopen-form" not in page      # supervisors only
    login(client, staff["supervisor"])
    page = client.get(f"/crew/tickets/{copy['public_id']}").get_data(as_text=True)
    assert 'id="duplicate-form"' in page and 'id="reopen-form"' in page
    headers = {"X-CSRFToken": _csrf(client), "Accept": "application/json"}
    url = f"/crew/tickets/{copy['public_id']}/actions"
    r = client.post(url, headers=headers, data={"action": "duplicate", "duplicate_of": f"#{original['public_id']}",
                                                "key": uuid.uuid4().hex, "user": staff["supervisor"]})
    assert r.status_code == 200 and r.get_json()["status"] == "closed"
    head = client.get(f"/crew/tickets/{copy['public_id']}/state").get_json()["head"]
    assert f"Duplicate of <a href=\"/crew/tickets/{original['public_id']}\">#{original['public_id']}</a>" in head
    r = client.post(url, headers=headers, data={"action": "reopen", "reason": "Not the same dog",
                                                "key": uuid.uuid4().hex, "user": staff["supervisor"]})
    assert r.status_code == 200 and r.get_json()["status"] == "open"
    r = client.post(url, headers=headers, data={"action": "duplicate", "duplicate_of": "999999999",
                                                "key": uuid.uuid4().hex})
    assert r.status_code == 404 and _status(conn, copy["id"]) == "open"
