"""THE public view of service requests: what residents, tiles, feeds and published layers may see.

The view `public_requests` (migrations 0003, 0013) is the one definition. It never joins contacts, carries
no description and no words of the caller's (the address is the gazetteer's or a City record's; what a
caller said of the place is service_requests.address_note, staff only), leaves out non-public services,
and shows a sensitive service's request only snapped to a grid of 250 m on the ground, with no address
and no photo. Import `public_requests`
(a SQLAlchemy table clause over the view) or query the view by name; never read service_requests
directly for a public output.

Columns: objectid (int), public_id, service_code, service_name, service_group, status, closure_reason,
requested_at, updated_at, expected_at, closed_at, address, districts (jsonb {layer: code}),
coarsened (bool), media_url, geom (Point, EPSG:4326).
"""
import math

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Boolean, DateTime, Text, column, func, table, text
from sqlalchemy.dialects.postgresql import JSONB

from gis.errors import InvalidInput

public_requests = table(
    "public_requests",
    column("objectid", BigInteger), column("public_id", Text), column("service_code", Text),
    column("service_name", Text), column("service_group", Text), column("status", Text),
    column("closure_reason", Text), column("requested_at", DateTime(timezone=True)),
    column("updated_at", DateTime(timezone=True)), column("expected_at", DateTime(timezone=True)),
    column("closed_at", DateTime(timezone=True)), column("address", Text), column("districts", JSONB),
    column("coarsened", Boolean), column("media_url", Text), column("geom", Geometry("POINT", 4326)),
)


def in_envelope(minx, miny, maxx, maxy):
    """A condition on public_requests: the public point lies in the envelope (EPSG:4326).

    The view's geom is the stored public point (service_requests.public_geom), so this uses its index.
    """
    return func.ST_Intersects(public_requests.c.geom, func.ST_MakeEnvelope(minx, miny, maxx, maxy, 4326))


# The version of a source as one SQL expression (:source), for queries that read it in their own snapshot.
VERSION_SQL = "(SELECT coalesce(sum(version), 0)::bigint FROM data_versions WHERE name = :source)"


def data_version(conn, source="requests"):
    """A number that moves at every commit that changes `source` ("requests" or "layers").

    The sum of the source's counter rows: a writer bumps one of them at random (migration 0016), so
    concurrent writers do not queue on a single row."""
    return conn.execute(text(f"SELECT {VERSION_SQL}"), {"source": source}).scalar()


_CARD = text("""
SELECT public_id, service_code, service_name, service_group, status, closure_reason, requested_at,
       updated_at, expected_at, closed_at, address, districts, coarsened, media_url,
       ST_Y(geom) AS lat, ST_X(geom) AS lon, objectid
  FROM public_requests WHERE public_id = :pid""")


def status_card(conn, public_id):
    """One request as the public sees it (dict, without its internal id), or None."""
    pid = str(public_id or "").strip()
    if not pid.isdigit() or len(pid) > 20:
        return None
    row = conn.execute(_CARD, {"pid": pid}).first()
    if row is None:
        return None
    card = dict(row._mapping)
    card.pop("objectid")
    return card


def status_with_history(conn, public_id):
    """(card, public history) for the status page, or (None, [])."""
    from gis.lifecycle import history
    card = status_card(conn, public_id)
    if card is None:
        return None, []
    rid = conn.execute(text("SELECT objectid FROM public_requests WHERE public_id = :p"),
                       {"p": card["public_id"]}).scalar()
    events = history(conn, rid, public=True)
    if card["coarsened"]:  # a sensitive request's photos stay private, even in its history
        events = [{k: v for k, v in e.items() if k != "media"} for e in events]
    return card, events


_NEAR = text("""
SELECT public_id, service_name, status, requested_at, closed_at, address, coarsened,
       ST_Y(geom) AS lat, ST_X(geom) AS lon,
       round(ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography)) AS metres
  FROM public_requests
 WHERE geom && ST_Expand(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :margin)
   AND ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :radius)
   AND (status <> 'closed' OR closed_at > now() - make_interval(days => :days))
 ORDER BY metres, requested_at DESC
 LIMIT :limit""")


def near(conn, lat, lon, radius_m=400, limit=50, closed_days=30):
    """Open and recently closed public requests within radius_m of a point, nearest first."""
    try:
        lat, lon, radius_m = float(lat), float(lon), float(radius_m)
    except (TypeError, ValueError):
        raise InvalidInput("lat, lon and radius must be numbers", field="lat") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput("lat/lon out of range", field="lat")
    if not (0 < radius_m <= 2000):
        raise InvalidInput("radius must be between 1 and 2000 metres", field="radius")
    # degrees that surely cover radius_m here (longitude degrees shrink with latitude): an index filter
    margin = radius_m / (111_320 * max(math.cos(math.radians(lat)), 0.05))
    rows = conn.execute(_NEAR, {"lat": lat, "lon": lon, "radius": radius_m, "limit": int(limit),
                                "days": int(closed_days), "margin": margin})
    return [dict(r._mapping) for r in rows]


# --- where a resident means: a typed address beside a pin -----------------------------------------------

PIN_AGREES_M = 100   # a typed address this close to the pin names the same spot (a house vs. its kerb)


def metres_between(lat1, lon1, lat2, lon2):
    """Great-circle distance in metres (haversine); plenty for telling 100 m from a few km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008 * math.asin(math.sqrt(a))


def address_beside_pin(conn, address, lat, lon):
    """What a typed address says about a pin at (lat, lon): (agreeing, elsewhere).

    Only plausible geocoder answers count (score >= gis.intake.PLACE_MIN_SCORE, the rule intake places
    by). `agreeing` is the best one within PIN_AGREES_M of the pin, or None; `elsewhere` lists the
    others farther away as (candidate, metres). Both empty: the words are no address we know."""
    from gis import geocode
    from gis.intake import PLACE_MIN_SCORE
    found = [c for c in geocode.geocode(conn, address, limit=5) if c.score >= PLACE_MIN_SCORE]
    apart = [(c, metres_between(lat, lon, c.lat, c.lon)) for c in found]
    agreeing = next((c for c, m in apart if m <= PIN_AGREES_M), None)
    return agreeing, ([] if agreeing else apart)
