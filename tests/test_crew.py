"""Crew core: "near me" by KNN equals brute force (and uses its index), the cards and scope, the day's route
(nearest neighbour improved by 2-opt), ages as the list shows them."""
import random

import pytest
from sqlalchemy import text

from gis import crew, crew_route
from gis.errors import InvalidInput
from tests.crew_fixtures import STRAY_DOG, _crew_id, _dog, _user


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


@pytest.mark.parametrize("hours, shown", [(0.2, "< 1 h"), (5.4, "5 h"), (47.4, "47 h"), (50, "2 d"), (30 * 24, "30 d")])
def test_ages_read_as_on_the_list(hours, shown):
    assert crew.format_age(hours) == shown
