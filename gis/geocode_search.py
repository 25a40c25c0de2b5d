"""Forward geocoding of one free-text address against the gazetteer (address_points).

Parse with usaddress → exact (street + number) → interpolated between the nearest numbers of the same
parity on that street → fuzzy (trigram on street, number within a tolerance) → intersection of two
streets (closest points of the two streets). Candidates come ranked with a score in 0…1
(gis/geocode_candidates.py scores them).
"""
from sqlalchemy import text

from gis import address as addr
from gis import geocode_candidates as cand
from gis.geocode_candidates import FUZZY_MIN_SIMILARITY, NUMBER_TOLERANCE

_EXACT = text("""
    SELECT id, address, city, zip, parcel_id, ST_Y(geom) AS lat, ST_X(geom) AS lon, number_text
      FROM address_points WHERE street = :street AND number = :number
     ORDER BY (number_text = :number_text) DESC, id LIMIT 50""")

_NEIGHBOURS = text("""
    (SELECT number, ST_Y(geom) AS lat, ST_X(geom) AS lon, city, zip FROM address_points
      WHERE street = :street AND number < :number AND number % 2 = :parity ORDER BY number DESC LIMIT 1)
    UNION ALL
    (SELECT number, ST_Y(geom) AS lat, ST_X(geom) AS lon, city, zip FROM address_points
      WHERE street = :street AND number > :number AND number % 2 = :parity ORDER BY number LIMIT 1)""")

_SIMILAR_STREETS = text("""
    SELECT street, similarity(street, :street) AS sim FROM
      (SELECT DISTINCT street FROM address_points WHERE street % :street) s
     ORDER BY sim DESC, street LIMIT 5""")

_STREET_PREFIX = text("""
    SELECT DISTINCT street FROM address_points WHERE street LIKE :prefix ORDER BY street LIMIT 5""")

_NEAR_NUMBER = text("""
    SELECT id, address, city, zip, parcel_id, ST_Y(geom) AS lat, ST_X(geom) AS lon, number
      FROM address_points
     WHERE street = :street AND number BETWEEN :number - :tol AND :number + :tol AND number % 2 = :parity
     ORDER BY abs(number - :number), id LIMIT 10""")

_INTERSECTION = text("""
    WITH a AS (SELECT ST_Collect(geom) AS g FROM address_points WHERE street = :s1),
         b AS (SELECT ST_Collect(geom) AS g FROM address_points WHERE street = :s2),
         line AS (SELECT ST_ShortestLine(a.g, b.g) AS l FROM a, b WHERE a.g IS NOT NULL AND b.g IS NOT NULL)
    SELECT ST_Y(ST_Centroid(l)) AS lat, ST_X(ST_Centroid(l)) AS lon, ST_Length(l::geography) AS gap FROM line""")


def _on_street(conn, parsed, street, base_score):
    """Candidates for a house number on one street: exact, else interpolated, else nearest number."""
    number = parsed.number
    if number is None:
        return []
    rows = conn.execute(_EXACT, {"street": street, "number": number, "number_text": parsed.number_text}).all()
    if rows:
        return [cand.on_number(r, parsed, base_score) for r in rows]
    found = []
    parity = number % 2
    below_above = conn.execute(_NEIGHBOURS, {"street": street, "number": number, "parity": parity}).all()
    if len(below_above) == 2:
        lo, hi = sorted(below_above, key=lambda r: r.number)
        between = cand.interpolate(parsed, street, lo, hi, base_score)
        if between:
            found.append(between)
    if not found:
        rows = conn.execute(_NEAR_NUMBER, {"street": street, "number": number, "tol": NUMBER_TOLERANCE,
                                           "parity": parity}).all()
        found += [cand.near_number(r, number, base_score) for r in rows[:1]]
    return found


def _streets_like(conn, street):
    rows = conn.execute(_SIMILAR_STREETS, {"street": street}).all()
    similar = [(r.street, float(r.sim)) for r in rows if r.sim >= FUZZY_MIN_SIMILARITY]
    if not similar and len(street) >= 3:  # typing "E 4TH" before the suffix: a prefix match
        similar = [(r.street, 0.8) for r in conn.execute(_STREET_PREFIX, {"prefix": street + "%"})]
    return similar


def _intersection(conn, first, second):
    pairs = []
    firsts = [(first, 1.0)] if _street_exists(conn, first) else _streets_like(conn, first)[:2]
    seconds = [(second, 1.0)] if _street_exists(conn, second) else _streets_like(conn, second)[:2]
    for s1, sim1 in firsts:
        for s2, sim2 in seconds:
            row = conn.execute(_INTERSECTION, {"s1": s1, "s2": s2}).first()
            found = cand.crossing(s1, sim1, s2, sim2, row) if row else None
            if found:
                pairs.append(found)
    return pairs


def _street_exists(conn, street):
    return conn.scalar(text("SELECT EXISTS (SELECT 1 FROM address_points WHERE street = :s)"), {"s": street})


def geocode(conn, query, limit=5):
    """Ranked candidates for a free-text address (best first); [] when nothing plausible matches."""
    query = cand.clean_query(query)
    if not query:
        return []
    if cand.uses_arcgis():
        from gis import geocode_arcgis
        return geocode_arcgis.geocode(query, limit)
    streets = addr.split_intersection(query)
    if streets:
        return cand.distinct_places(_intersection(conn, *streets), limit)
    parsed = addr.parse(query)
    if not parsed.street:
        return []
    cands = []
    if _street_exists(conn, parsed.street):
        cands = _on_street(conn, parsed, parsed.street, 1.0)
    if not cands:
        for street, sim in _streets_like(conn, parsed.street):
            if street != parsed.street:
                cands += _on_street(conn, parsed, street, 0.95 * sim)
    municipality = cand.municipality.names(conn) if parsed.city else frozenset()
    return cand.distinct_places(cand.with_locality(cands, parsed, municipality), limit)
