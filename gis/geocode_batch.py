"""Many addresses at once (the `pin311 geocode` CLI, bulk import): set-based, with the single lookup's scores."""
import io

from sqlalchemy import text

from gis import address as addr
from gis import geocode_candidates as cand
from gis.geocode_candidates import FUZZY_MIN_SIMILARITY, NUMBER_TOLERANCE
from gis.geocode_search import geocode

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

_INTERSECTION_MANY = text("""
    SELECT u.k, ST_Y(ST_Centroid(x.l)) AS lat, ST_X(ST_Centroid(x.l)) AS lon, ST_Length(x.l::geography) AS gap
      FROM unnest(CAST(:k AS int[]), CAST(:s1 AS text[]), CAST(:s2 AS text[])) AS u(k, s1, s2)
      CROSS JOIN LATERAL (
        SELECT ST_ShortestLine(a.g, b.g) AS l
          FROM (SELECT ST_Collect(geom) AS g FROM address_points WHERE street = u.s1) a,
               (SELECT ST_Collect(geom) AS g FROM address_points WHERE street = u.s2) b
         WHERE a.g IS NOT NULL AND b.g IS NOT NULL) x""")

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
    queries = [cand.clean_query(q) for q in queries]
    distinct = list(dict.fromkeys(q for q in queries if q))
    if cand.uses_arcgis():   # another provider: its answers, row by row
        by_query = {}
        for q in distinct:
            by_query[q] = cand.decide(geocode(conn, q, limit=2), ambiguity_gap)
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

    municipality = cand.municipality.names(conn)

    def settle(i, cands):
        found[i] = cand.decide(cand.distinct_places(cand.with_locality(cands, parsed[i], municipality), 2),
                               ambiguity_gap)

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
    found.update({i: cand.decide(c, ambiguity_gap) for i, c in _intersections_many(conn, crossings, state).items()})
    if state.get("streets"):
        conn.execute(text("DROP TABLE geocode_streets"))
    if progress:
        progress(len(found))
    for i, q in enumerate(distinct):
        if i not in found:
            found[i] = cand.decide(geocode(conn, q, limit=2), ambiguity_gap)
            if progress:
                progress(1)
    by_query = {q: found[i] for i, q in enumerate(distinct)}
    return [by_query.get(q) if q else None for q in queries]


def _intersections_many(conn, crossings, state):
    """The single lookup's intersections for many {key: (street, street)} at once → {key: [Candidate]}
    (best 2 places). Streets the gazetteer does not know are replaced by their similar ones (or prefix
    matches), as a single lookup does.
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
    for r in sorted(rows, key=lambda r: r.k):   # in the order a single lookup would try them
        key, s1, sim1, s2, sim2 = pairs[r.k]
        found = cand.crossing(s1, sim1, s2, sim2, r)
        if found:
            out[key].append(found)
    return {key: cand.distinct_places(cands, 2) for key, cands in out.items()}


def _similar_streets_many(conn, streets, state):
    """{street: [(similar street, similarity)]} for many streets in one query (as a single lookup finds them).

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
        # As a single lookup: nothing similar, but typed as the start of a name ("E 4TH") → a prefix match.
        short = sorted(s for s in streets if s not in out and len(s) >= 3)
        for r in conn.execute(_PREFIX_MANY, {"streets": short}) if short else ():
            out.setdefault(r.asked, []).append((r.street, 0.8))
    return out


def _on_streets_many(conn, items):
    """A single lookup's search on one street, for many at once: {key: (parsed, street, base score)} →
    {key: [Candidate]}: exact, else interpolated, else the nearest number."""
    out = {}
    if not items:
        return out
    conn.execute(text("DROP TABLE IF EXISTS geocode_batch"))
    conn.execute(text(_BATCH_STAGING))
    cursor = conn.connection.driver_connection.cursor()
    cursor.copy_expert("COPY geocode_batch FROM STDIN", io.StringIO("".join(
        f"{k}\t{_tsv(street)}\t{p.number}\t{_tsv(p.number_text)}\n" for k, (p, street, _) in items.items())))
    conn.execute(text("ANALYZE geocode_batch"))
    for row in conn.execute(_BATCH_EXACT):
        p, street, base = items[row.idx]
        out.setdefault(row.idx, []).append(cand.on_number(row, p, base))
    for row in conn.execute(_BATCH_BETWEEN):   # the number lies between two known ones: interpolate
        p, street, base = items[row.idx]
        between = cand.interpolate(p, street, _End(row, "lo"), _End(row, "hi"), base)
        if between:
            out[row.idx] = [between]
    for row in conn.execute(_BATCH_NEAR, {"tol": NUMBER_TOLERANCE}):   # else the nearest number nearby
        if row.idx not in out:
            p, street, base = items[row.idx]
            out[row.idx] = [cand.near_number(row, p.number, base)]
    conn.execute(text("DROP TABLE geocode_batch"))
    return out
