"""Geocoder candidates and how they are scored: one set of rules for a single lookup and a file batch.

Both gis/geocode_search.py (one address) and gis/geocode_batch.py (a file of them, set-based) find rows
in the gazetteer and turn them into Candidates here, so a batch row and a single lookup score alike.
"""
import math
import os
import re
import time
import weakref
from dataclasses import asdict, dataclass

from sqlalchemy import text

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
    match: str        # exact | interpolated | fuzzy | intersection | ambiguous (batch: no point)
    score: float
    parcel_id: str | None = None
    city: str | None = None
    zip: str | None = None
    address_id: int | None = None

    def as_dict(self):
        return asdict(self)


def clean_query(query):
    """The query as the geocoder reads it: control characters blanked, trimmed, at most MAX_QUERY long."""
    return _CONTROL.sub(" ", str(query or "")).strip()[:MAX_QUERY]


def uses_arcgis():
    """PIN311_GEOCODER=arcgis (issue 9): the portal's geocode service answers instead of the gazetteer."""
    return os.environ.get("PIN311_GEOCODER", "local") == "arcgis"


def from_row(row, match, score):
    return Candidate(row.address, row.lat, row.lon, match, round(score, 3), getattr(row, "parcel_id", None),
                     row.city, row.zip, getattr(row, "id", None))


def on_number(row, parsed, base_score):
    """A gazetteer row with the street and number asked for: exact on the street asked, else fuzzy.

    1 when the gazetteer writes the number as asked ("121"), less for another form ("121-135"): the
    range is another building, so "121 Charles St" prefers 121 over 121-135 instead of a tie."""
    same = (row.number_text or "").upper() == (parsed.number_text or "").upper()
    return from_row(row, "exact" if base_score == 1 else "fuzzy", base_score * (1.0 if same else OTHER_NUMBER_FORM))


def near_number(row, number, base_score):
    """The nearest known number on the street (within NUMBER_TOLERANCE, same side): a fuzzy guess."""
    return from_row(row, "fuzzy", 0.7 * base_score * (1 - abs(row.number - number) / 100))


def interpolate(parsed, street, lo, hi, base_score):
    """A point between the nearest lower and higher numbers of the same parity, when they are close."""
    number = parsed.number
    if hi.number - lo.number > 4 * NUMBER_TOLERANCE or (lo.city != hi.city and parsed.city):
        return None
    t = (number - lo.number) / (hi.number - lo.number)
    label = f"{parsed.number_text or number} {street.title()}" + (f", {lo.city}" if lo.city else "")
    return Candidate(label, lo.lat + t * (hi.lat - lo.lat), lo.lon + t * (hi.lon - lo.lon),
                     "interpolated", round(0.85 * base_score, 3), None, lo.city, lo.zip)


def crossing(s1, sim1, s2, sim2, row):
    """Where two streets meet (`row`: the centre and length of the shortest line between their
    addresses), or None when they are too far apart to cross."""
    if row.gap > INTERSECTION_MAX_GAP_M:
        return None
    score = 0.9 * sim1 * sim2 * (1 - row.gap / (4 * INTERSECTION_MAX_GAP_M))
    return Candidate(f"{s1.title()} & {s2.title()}", row.lat, row.lon, "intersection", round(score, 3))


def _locality_bonus(cand, parsed, municipality):
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


def with_locality(cands, parsed, municipality):
    """`cands` rescored (in place) by the neighbourhood and ZIP the caller gave; returns them."""
    for c in cands:
        c.score = round(min(1.0, c.score + _locality_bonus(c, parsed, municipality)), 3)
    return cands


class Municipality:
    """The jurisdiction's own names (its boundary's code and name, "City of " dropped), lower case,
    re-read at most every `ttl` seconds: a re-imported boundary counts without a restart.

    Kept as gis.services.Catalogue keeps the catalogue: per engine, so per database (a tool or a test
    that talks to two databases must not answer one with the other's names), weakly (a disposed engine's
    entry goes with it), read on the caller's connection (no second pooled connection while one is held).
    """

    def __init__(self, ttl=10.0):
        self.ttl = ttl
        self._by_database = weakref.WeakKeyDictionary()   # engine -> (monotonic time loaded, frozenset)

    def clear(self):
        self._by_database.clear()

    def names(self, conn):
        loaded_at, names = self._by_database.get(conn.engine, (-math.inf, frozenset()))
        if time.monotonic() - loaded_at > self.ttl:
            rows = conn.execute(text("SELECT d.code, d.name FROM districts d JOIN layers l ON l.id = d.layer_id "
                                     "WHERE l.kind = 'boundary'")).all()
            found = {v.lower() for r in rows for v in (r.code, r.name) if v}
            names = frozenset(found | {n[len("city of "):] for n in found if n.startswith("city of ")})
            self._by_database[conn.engine] = (time.monotonic(), names)
        return names


municipality = Municipality()


def distinct_places(cands, limit):
    """Keep the best candidate of each place (the same address twice in the gazetteer is one place)."""
    kept = []
    for c in sorted(cands, key=lambda c: -c.score):
        close = any(abs(c.lat - k.lat) * 111_000 < SAME_PLACE_M and
                    abs(c.lon - k.lon) * 111_000 * math.cos(math.radians(c.lat)) < SAME_PLACE_M for k in kept)
        if not close:
            kept.append(c)
        if len(kept) == limit:
            break
    return kept


def decide(cands, gap):
    """The one answer a file row gets: the best place, or "ambiguous" (no point) when the best two tie
    within `gap`, or None."""
    if not cands:
        return None
    if len(cands) > 1 and cands[0].score - cands[1].score <= gap:
        best = cands[0]
        return Candidate(best.address, None, None, "ambiguous", best.score)
    return cands[0]
