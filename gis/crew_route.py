"""The crew's day: their open tickets in a visiting order from where they stand (nearest neighbour,
then 2-opt), with geodesic legs. Small enough to plan exactly per request: at most ROUTE_MAX_STOPS."""
from sqlalchemy import text

from gis import crew
from gis.locate import check_point

ROUTE_MAX_STOPS = 60


def _distance_matrix(points):
    """Geodesic metres between every pair of (lat, lon) points (WGS84, pyproj)."""
    n = len(points)
    matrix = [[0.0] * n for _ in range(n)]
    for i in range(n):
        if i + 1 == n:
            break
        lats2 = [p[0] for p in points[i + 1:]]
        lons2 = [p[1] for p in points[i + 1:]]
        _, _, dist = crew.GEOD.inv([points[i][1]] * len(lats2), [points[i][0]] * len(lats2), lons2, lats2)
        for j, d in enumerate(dist, start=i + 1):
            matrix[i][j] = matrix[j][i] = float(d)
    return matrix


def path_length(matrix, order):
    return sum(matrix[a][b] for a, b in zip(order, order[1:]))


def nearest_neighbour(matrix):
    """An open path from node 0 visiting every node, always to the nearest unvisited one."""
    order, left = [0], set(range(1, len(matrix)))
    while left:
        here = order[-1]
        nxt = min(left, key=lambda j: (matrix[here][j], j))
        order.append(nxt)
        left.remove(nxt)
    return order


def two_opt(matrix, order):
    """Improve an open path with a fixed start by reversing segments until no reversal shortens it."""
    order = list(order)
    improved = True
    while improved:
        improved = False
        for i in range(1, len(order) - 1):
            for j in range(i + 1, len(order)):
                a, b = order[i - 1], order[i]
                c = order[j]
                d = order[j + 1] if j + 1 < len(order) else None
                before = matrix[a][b] + (matrix[c][d] if d is not None else 0.0)
                after = matrix[a][c] + (matrix[b][d] if d is not None else 0.0)
                if after < before - 1e-6:
                    order[i:j + 1] = reversed(order[i:j + 1])
                    improved = True
    return order


_CREW_OPEN = text("""
SELECT r.id FROM service_requests r
 WHERE r.status <> 'closed' AND r.crew_id = ANY(:crew_ids)
 ORDER BY r.expected_at NULLS LAST, r.id LIMIT :n""")


def plan_route(conn, user, lat, lon):
    """The crew's open tickets in a visiting order from (lat, lon): nearest neighbour, then 2-opt.

    Returns {"stops": [card + leg_m], "total_m", "nearest_neighbour_m"} (geodesic metres). At most
    ROUTE_MAX_STOPS tickets (the most urgent by expected date) are planned.
    """
    lat, lon = check_point(lat, lon)
    ids = [r.id for r in conn.execute(_CREW_OPEN, {"crew_ids": list(user.crew_ids), "n": ROUTE_MAX_STOPS})]
    cards = crew._cards(conn, [(i, None) for i in ids])
    points = [(lat, lon)] + [(c["lat"], c["lon"]) for c in cards]
    matrix = _distance_matrix(points)
    greedy = nearest_neighbour(matrix)
    order = two_opt(matrix, greedy)
    stops = []
    for prev, node in zip(order, order[1:]):
        card = dict(cards[node - 1])
        card["leg_m"] = round(matrix[prev][node], 1)
        card["distance_m"] = round(matrix[0][node], 1)
        stops.append(card)
    return {"start": {"lat": lat, "lon": lon}, "stops": stops,
            "total_m": round(path_length(matrix, order), 1),
            "nearest_neighbour_m": round(path_length(matrix, greedy), 1)}
