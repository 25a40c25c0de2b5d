"""Forward and reverse geocoding against the address gazetteer (address_points).

Forward: parse with usaddress → exact (street + number) → interpolated between the nearest numbers of
the same parity on that street → fuzzy (trigram on street, number within a tolerance) → intersection
of two streets (closest points of the two streets). Candidates come ranked with a score in 0…1.
"""
import os
import re
from dataclasses import asdict, dataclass
from functools import lru_cache

from sqlalchemy import text

from gis import address as addr

NUMBER_TOLERANCE = 20          # fuzzy: accept a house number this far off (same side of the street)
FUZZY_MIN_SIMILARITY = 0.45
INTERSECTION_MAX_GAP_M = 250   # two streets whose nearest addresses are further apart do not cross
SAME_PLACE_M = 60              # candidates closer than this are one place
MAX_QUERY = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")   # NUL cannot even be sent to PostgreSQL
OTHER_NUMBER_FORM = 0.9        # exact street + number, but the number written otherwise (a range)
# The caller named another neighbourhood or ZIP than the candidate's: enough that a guessed house number
# ("1 Washington St, Dorchester" → 3 Washington St, Brighton, 0.69) falls below intake's 0.5, and that an
# exact address contradicted by both neighbourhood and ZIP does too; one slip on an exact address stays 0.7.
LOCALITY_PENALTY = 0.3


@dataclass
class Candidate:
    address: str
    lat: float
    lon: float
    match: str        # exact | interpolated | fuzzy | intersection
    score: float
    parcel_id: str | None = None
    city: str | None = None
    zip: str | None = None
    address_id: int | None = None

    def as_dict(self):
        return asdict(self)


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

_REVERSE = text("""
    SELECT a.id, a.address, a.city, a.zip, ST_Y(a.geom) AS lat, ST_X(a.geom) AS lon,
           ST_Distance(a.geom::geography, p.g::geography) AS distance_m,
           (SELECT parcel_id FROM parcels WHERE ST_Covers(geom, p.g) ORDER BY parcel_id LIMIT 1) AS parcel_id
      FROM (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) p
      CROSS JOIN LATERAL (SELECT * FROM address_points ORDER BY geom <-> p.g LIMIT 1) a""")


def _candidate(row, match, score):
    return Candidate(row.address, row.lat, row.lon, match, round(score, 3), getattr(row, "parcel_id", None),
                     row.city, row.zip, getattr(row, "id", None))


def _locality_bonus(cand, parsed, municipality=frozenset()):
    """A little for each locality the caller gave that agrees, a penalty for one that contradicts:
    "100 Tremont St, Brighton" must not tie with 100 Tremont St downtown (both score 1.0 otherwise).
    The municipality's own name ("Boston", written after a Dorchester address too) contradicts nothing."""
    bonus = 0.0
    if parsed.zip and cand.zip:
        bonus += 0.05 if cand.zip == parsed.zip else -LOCALITY_PENALTY
    if parsed.city and cand.city:
        if parsed.city.lower() == cand.city.lower():
            bonus += 0.05
        else:   # "Boston" after a Dorchester address is the city, not a slip: it only breaks ties
            bonus -= 0.05 if parsed.city.lower() in municipality else LOCALITY_PENALTY
    return bonus


@lru_cache(maxsize=16)
def _municipality_of(engine):
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT d.code, d.name FROM districts d JOIN layers l ON l.id = d.layer_id "
                                 "WHERE l.kind = 'boundary'")).all()
    names = {v.lower() for r in rows for v in (r.code, r.name) if v}
    return frozenset(names | {n[len("city of "):] for n in names if n.startswith("city of ")})


def _municipality(conn):
    """The jurisdiction's own names (its boundary's code and name, "City of " dropped), lower case."""
    return _municipality_of(conn.engine)


def _as_written(row, parsed):
    """1 when the gazetteer writes the number as asked ("121"), less for another form ("121-135"): the
    range is another building, so "121 Charles St" prefers 121 over 121-135 instead of a tie."""
    same = (row.number_text or "").upper() == (parsed.number_text or "").upper()
    return 1.0 if same else OTHER_NUMBER_FORM


def _on_street(conn, parsed, street, base_score):
    """Candidates for a house number on one street: exact, else interpolated, else nearest number."""
    number = parsed.number
    if number is None:
        return []
    rows = conn.execute(_EXACT, {"street": street, "number": number, "number_text": parsed.number_text}).all()
    if rows:
        return [_candidate(r, "exact" if base_score == 1 else "fuzzy", base_score * _as_written(r, parsed))
                for r in rows]
    found = []
    parity = number % 2
    below_above = conn.execute(_NEIGHBOURS, {"street": street, "number": number, "parity": parity}).all()
    if len(below_above) == 2:
        lo, hi = sorted(below_above, key=lambda r: r.number)
        cand = _interpolate(parsed, street, lo, hi, base_score)
        if cand:
            found.append(cand)
    if not found:
        rows = conn.execute(_NEAR_NUMBER, {"street": street, "number": number, "tol": NUMBER_TOLERANCE,
                                           "parity": parity}).all()
        for r in rows[:1]:
            found.append(_candidate(r, "fuzzy", 0.7 * base_score * (1 - abs(r.number - number) / 100)))
    return found


def _interpolate(parsed, street, lo, hi, base_score):
    """A point between the nearest lower and higher numbers of the same parity, when they are close."""
    number = parsed.number
    if hi.number - lo.number > 4 * NUMBER_TOLERANCE or (lo.city != hi.city and parsed.city):
        return None
    t = (number - lo.number) / (hi.number - lo.number)
    label = f"{parsed.number_text or number} {street.title()}" + (f", {lo.city}" if lo.city else "")
    return Candidate(label, lo.lat + t * (hi.lat - lo.lat), lo.lon + t * (hi.lon - lo.lon),
                     "interpolated", round(0.85 * base_score, 3), None, lo.city, lo.zip)


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
            if row and row.gap <= INTERSECTION_MAX_GAP_M:
                score = 0.9 * sim1 * sim2 * (1 - row.gap / (4 * INTERSECTION_MAX_GAP_M))
                pairs.append(Candidate(f"{s1.title()} & {s2.title()}", row.lat, row.lon, "intersection",
                                       round(score, 3)))
    return pairs


def _street_exists(conn, street):
    return conn.scalar(text("SELECT EXISTS (SELECT 1 FROM address_points WHERE street = :s)"), {"s": street})


def _distinct_places(cands, limit):
    """Keep the best candidate of each place (the same address twice in the gazetteer is one place)."""
    from math import cos, radians
    kept = []
    for c in sorted(cands, key=lambda c: -c.score):
        close = any(abs(c.lat - k.lat) * 111_000 < SAME_PLACE_M and
                    abs(c.lon - k.lon) * 111_000 * cos(radians(c.lat)) < SAME_PLACE_M for k in kept)
        if not close:
            kept.append(c)
        if len(kept) == limit:
            break
    return kept


def geocode(conn, query, limit=5):
    """Ranked candidates for a free-text address (best first); [] when nothing plausible matches."""
    query = _CONTROL.sub(" ", str(query or "")).strip()[:MAX_QUERY]
    if not query:
        return []
    if os.environ.get("PIN311_GEOCODER", "local") == "arcgis":   # issue 9: the portal's geocode service
        from gis import geocode_arcgis
        return geocode_arcgis.geocode(query, limit)
    streets = addr.split_intersection(query)
    if streets:
        return _distinct_places(_intersection(conn, *streets), limit)
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
    municipality = _municipality(conn) if parsed.city else frozenset()
    for c in cands:
        c.score = round(min(1.0, c.score + _locality_bonus(c, parsed, municipality)), 3)
    return _distinct_places(cands, limit)


def reverse(conn, lat, lon):
    """The nearest gazetteer address to a point (with its distance) and the parcel containing the point."""
    row = conn.execute(_REVERSE, {"lat": lat, "lon": lon}).first()
    if row is None:
        return None
    return {"address": row.address, "address_id": row.id, "city": row.city, "zip": row.zip,
            "lat": row.lat, "lon": row.lon, "distance_m": round(row.distance_m, 1), "parcel_id": row.parcel_id}


def address_point(conn, address_id):
    """A gazetteer entry by id (Open311 address_id), or None."""
    try:
        address_id = int(address_id)
    except (TypeError, ValueError):
        return None
    row = conn.execute(text("SELECT id, address, city, zip, parcel_id, ST_Y(geom) AS lat, ST_X(geom) AS lon "
                            "FROM address_points WHERE id = :id"), {"id": address_id}).first()
    return _candidate(row, "exact", 1.0) if row else None


# --- many addresses at once (the `pin311 geocode` CLI) ----------------------------------------------

_BATCH_STAGING = """CREATE TEMP TABLE geocode_batch (idx int, street text, number int, number_text text)
                    ON COMMIT DROP"""
_BATCH_EXACT = text("""
    SELECT b.idx, a.id, a.address, a.city, a.zip, a.parcel_id, ST_Y(a.geom) AS lat, ST_X(a.geom) AS lon,
           a.number_text
      FROM geocode_batch b JOIN address_points a ON a.street = b.street AND a.number = b.number
     ORDER BY b.idx, (a.number_text = b.number_text) DESC, a.id""")


_BATCH_BETWEEN = text("""
    SELECT b.idx, lo.number AS lo_number, lo.lat AS lo_lat, lo.lon AS lo_lon, lo.city AS lo_city,
           lo.zip AS lo_zip, hi.number AS hi_number, hi.lat AS hi_lat, hi.lon AS hi_lon, hi.city AS hi_city
      FROM geocode_batch b
      CROSS JOIN LATERAL (SELECT number, ST_Y(geom) AS lat, ST_X(geom) AS lon, city, zip FROM address_points a
                           WHERE a.street = b.street AND a.number < b.number AND a.number % 2 = b.number % 2
                           ORDER BY a.number DESC LIMIT 1) lo
      CROSS JOIN LATERAL (SELECT number, ST_Y(geom) AS lat, ST_X(geom) AS lon, city FROM address_points a
                           WHERE a.street = b.street AND a.number > b.number AND a.number % 2 = b.number % 2
                           ORDER BY a.number LIMIT 1) hi
     WHERE NOT EXISTS (SELECT 1 FROM address_points a WHERE a.street = b.street AND a.number = b.number)""")


_BATCH_NEAR = text("""
    SELECT b.idx, a.id, a.address, a.city, a.zip, a.parcel_id, a.lat, a.lon, a.number
      FROM geocode_batch b
      CROSS JOIN LATERAL (SELECT id, address, city, zip, parcel_id, ST_Y(geom) AS lat, ST_X(geom) AS lon, number
                            FROM address_points a
                           WHERE a.street = b.street AND a.number BETWEEN b.number - :tol AND b.number + :tol
                             AND a.number % 2 = b.number % 2
                           ORDER BY abs(a.number - b.number), a.id LIMIT 1) a
     WHERE NOT EXISTS (SELECT 1 FROM address_points x WHERE x.street = b.street AND x.number = b.number)""")


class _End:
    def __init__(self, row, side):
        self.number = getattr(row, f"{side}_number")
        self.lat, self.lon = getattr(row, f"{side}_lat"), getattr(row, f"{side}_lon")
        self.city = getattr(row, f"{side}_city")
        self.zip = getattr(row, "lo_zip")


def _tsv(value):
    if value is None:
        return "\\N"
    return str(value).replace("\\", "\\\\").replace("\t", " ").replace("\n", " ").replace("\r", " ")


def geocode_many(conn, queries, ambiguity_gap=0.05, progress=None):
    """The best candidate for each query (None when nothing matches), in the order given.

    Set-based: every distinct query is parsed once, then joins through a temporary table find, for
    all of them at once, the exact street + number, else an interpolation between the known numbers
    around it, else the nearest known number; streets the gazetteer does not know are matched by
    trigram similarity (or as a prefix) in one query and go through the same joins; intersections are
    computed for all pairs in one query. No query goes through `geocode` one by one. The scoring is `geocode`'s, so a
    batch row and a single lookup agree. A query whose best places tie (within ambiguity_gap) comes
    back as a Candidate with match "ambiguous" and no point: a file row must not silently pick one.
    With PIN311_GEOCODER=arcgis every distinct query goes to that provider instead.
    `progress(n)` is called with the number of distinct queries resolved since the last call.
    """
    queries = [_CONTROL.sub(" ", str(q or "")).strip()[:MAX_QUERY] for q in queries]
    distinct = list(dict.fromkeys(q for q in queries if q))
    if os.environ.get("PIN311_GEOCODER", "local") == "arcgis":   # another provider: its answers, row by row
        by_query = {}
        for q in distinct:
            by_query[q] = _decide(geocode(conn, q, limit=2), ambiguity_gap)
            if progress:
                progress(1)
        return [by_query.get(q) if q else None for q in queries]
    parsed, found, crossings = {}, {}, {}
    for i, q in enumerate(distinct):
        streets = addr.split_intersection(q)
        if streets:
            crossings[i] = streets
            continue
        p = addr.parse(q)
        if not p.street or p.number is None:   # geocode() finds nothing for these either: no query
            found[i] = None
        else:
            parsed[i] = p

    municipality = _municipality(conn)

    def settle(i, cands):
        for c in cands:
            c.score = round(min(1.0, c.score + _locality_bonus(c, parsed[i], municipality)), 3)
        found[i] = _decide(_distinct_places(cands, 2), ambiguity_gap)

    for i, cands in _on_streets_many(conn, {i: (p, p.street, 1.0) for i, p in parsed.items()}).items():
        settle(i, cands)
    rest = [i for i in parsed if i not in found]
    state = {}
    similar = _similar_streets_many(conn, {parsed[i].street for i in rest}, state)
    items, owner = {}, {}
    for i in rest:
        for street, sim in similar.get(parsed[i].street, ()):
            if street != parsed[i].street:
                owner[len(items)] = i
                items[len(items)] = (parsed[i], street, 0.95 * sim)
    per_query = {i: [] for i in rest}
    for k, cands in _on_streets_many(conn, items).items():
        per_query[owner[k]] += cands
    for i, cands in per_query.items():
        settle(i, cands)
    found.update({i: _decide(c, ambiguity_gap) for i, c in _intersections_many(conn, crossings, state).items()})
    if state.get("streets"):
        conn.execute(text("DROP TABLE geocode_streets"))
    if progress:
        progress(len(found))
    for i, q in enumerate(distinct):
        if i not in found:
            found[i] = _decide(geocode(conn, q, limit=2), ambiguity_gap)
            if progress:
                progress(1)
    by_query = {q: found[i] for i, q in enumerate(distinct)}
    return [by_query.get(q) if q else None for q in queries]


_INTERSECTION_MANY = text("""
    SELECT u.k, ST_Y(ST_Centroid(x.l)) AS lat, ST_X(ST_Centroid(x.l)) AS lon, ST_Length(x.l::geography) AS gap
      FROM unnest(CAST(:k AS int[]), CAST(:s1 AS text[]), CAST(:s2 AS text[])) AS u(k, s1, s2)
      CROSS JOIN LATERAL (
        SELECT ST_ShortestLine(a.g, b.g) AS l
          FROM (SELECT ST_Collect(geom) AS g FROM address_points WHERE street = u.s1) a,
               (SELECT ST_Collect(geom) AS g FROM address_points WHERE street = u.s2) b
         WHERE a.g IS NOT NULL AND b.g IS NOT NULL) x""")


def _intersections_many(conn, crossings, state):
    """`_intersection` for many {key: (street, street)} at once → {key: [Candidate]} (best 2 places).

    Streets the gazetteer does not know are replaced by their similar ones (or prefix matches), as
    `_intersection` does.
    """
    if not crossings:
        return {}
    names = {s for pair in crossings.values() for s in pair}
    known = set(conn.scalars(text("SELECT DISTINCT street FROM address_points WHERE street = ANY(:s)"),
                             {"s": sorted(names)}))
    similar = _similar_streets_many(conn, names - known, state)
    pairs, out = [], {}
    for key, (first, second) in crossings.items():
        firsts = [(first, 1.0)] if first in known else similar.get(first, [])[:2]
        seconds = [(second, 1.0)] if second in known else similar.get(second, [])[:2]
        out[key] = []
        if firsts and seconds:
            pairs += [(key, s1, sim1, s2, sim2) for s1, sim1 in firsts for s2, sim2 in seconds]
    rows = conn.execute(_INTERSECTION_MANY, {"k": list(range(len(pairs))), "s1": [p[1] for p in pairs],
                                             "s2": [p[3] for p in pairs]}).all() if pairs else []
    for r in sorted(rows, key=lambda r: r.k):   # in the order `_intersection` would try them
        key, s1, sim1, s2, sim2 = pairs[r.k]
        if r.gap <= INTERSECTION_MAX_GAP_M:
            score = 0.9 * sim1 * sim2 * (1 - r.gap / (4 * INTERSECTION_MAX_GAP_M))
            out[key].append(Candidate(f"{s1.title()} & {s2.title()}", r.lat, r.lon, "intersection",
                                      round(score, 3)))
    return {key: _distinct_places(cands, 2) for key, cands in out.items()}


_SIMILAR_MANY = text("""
    SELECT u.asked, s.street, s.sim
      FROM unnest(CAST(:streets AS text[])) AS u(asked)
      CROSS JOIN LATERAL (SELECT street, similarity(street, u.asked) AS sim FROM geocode_streets
                           WHERE street % u.asked ORDER BY sim DESC, street LIMIT 5) s""")


_PREFIX_MANY = text("""
    SELECT u.asked, s.street
      FROM unnest(CAST(:streets AS text[])) AS u(asked)
      CROSS JOIN LATERAL (SELECT street FROM geocode_streets WHERE street LIKE u.asked || '%'
                           ORDER BY street LIMIT 5) s
     ORDER BY u.asked, s.street""")


def _similar_streets_many(conn, streets, state):
    """{street: [(similar street, similarity)]} for many streets in one query (as _streets_like).

    The trigram search runs over the few thousand distinct street names (a temporary table with its
    own trigram index), not the gazetteer's tens of thousands of rows: ~100x less to scan per street.
    """
    out = {}
    if streets:
        if not state.get("streets"):   # once per batch; geocode_many drops it at the end
            conn.execute(text("DROP TABLE IF EXISTS geocode_streets"))
            conn.execute(text("CREATE TEMP TABLE geocode_streets ON COMMIT DROP AS "
                              "SELECT DISTINCT street FROM address_points"))
            conn.execute(text("CREATE INDEX ON geocode_streets USING gin (street gin_trgm_ops)"))
            conn.execute(text("ANALYZE geocode_streets"))
            state["streets"] = True
        for r in conn.execute(_SIMILAR_MANY, {"streets": sorted(streets)}):
            if r.sim >= FUZZY_MIN_SIMILARITY:
                out.setdefault(r.asked, []).append((r.street, float(r.sim)))
        # As _streets_like: nothing similar, but typed as the start of a name ("E 4TH") → a prefix match.
        short = sorted(s for s in streets if s not in out and len(s) >= 3)
        for r in conn.execute(_PREFIX_MANY, {"streets": short}) if short else ():
            out.setdefault(r.asked, []).append((r.street, 0.8))
    return out


def _on_streets_many(conn, items):
    """`_on_street` for many at once: {key: (parsed, street, base score)} → {key: [Candidate]}."""
    out = {}
    if not items:
        return out
    import io
    conn.execute(text("DROP TABLE IF EXISTS geocode_batch"))
    conn.execute(text(_BATCH_STAGING))
    cursor = conn.connection.driver_connection.cursor()
    cursor.copy_expert("COPY geocode_batch FROM STDIN", io.StringIO("".join(
        f"{k}\t{_tsv(street)}\t{p.number}\t{_tsv(p.number_text)}\n" for k, (p, street, _) in items.items())))
    conn.execute(text("ANALYZE geocode_batch"))
    for row in conn.execute(_BATCH_EXACT):
        p, street, base = items[row.idx]
        out.setdefault(row.idx, []).append(
            _candidate(row, "exact" if base == 1 else "fuzzy", base * _as_written(row, p)))
    for row in conn.execute(_BATCH_BETWEEN):   # the number lies between two known ones: interpolate
        p, street, base = items[row.idx]
        cand = _interpolate(p, street, _End(row, "lo"), _End(row, "hi"), base)
        if cand:
            out[row.idx] = [cand]
    for row in conn.execute(_BATCH_NEAR, {"tol": NUMBER_TOLERANCE}):   # else the nearest number nearby
        if row.idx not in out:
            p, street, base = items[row.idx]
            out[row.idx] = [_candidate(row, "fuzzy", 0.7 * base * (1 - abs(row.number - p.number) / 100))]
    conn.execute(text("DROP TABLE geocode_batch"))
    return out


def _decide(cands, gap):
    if not cands:
        return None
    if len(cands) > 1 and cands[0].score - cands[1].score <= gap:
        best = cands[0]
        return Candidate(best.address, None, None, "ambiguous", best.score)
    return cands[0]
