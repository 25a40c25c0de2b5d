"""Reverse geocoding (a point → the nearest gazetteer address and its parcel) and gazetteer entries by id."""
from sqlalchemy import text

from gis.geocode_candidates import from_row

# The gazetteer address at a spot: the nearest within AT_SPOT_M metres, in metres (degrees of longitude
# are shorter than degrees of latitude), the lowest id among equally near ones (the gazetteer has several
# addresses on one point: 5 and 7 Mohawk St). {g} is the point's SQL expression. The intake statement
# stores it as a ticket's address and the pin preview shows it, so the two always name the same place.
# The box (at least AT_SPOT_M each way: a degree of longitude is >= 111,000 m x cos(lat), of latitude
# >= 110,000 m) lets the index read only the points near the pin: cheaper than a nearest-neighbour scan
# (in EXPLAIN ANALYZE of the intake statement 0.068 -> 0.025 ms; PostgreSQL CPU per intake 0.708 -> 0.665 ms,
# medians of six alternating rounds, measured with the box and the old ordering by degrees).
AT_SPOT_M = 30
AT_SPOT = f"""
SELECT * FROM address_points
 WHERE geom && ST_Expand({{g}}, {AT_SPOT_M} / (111000 * cos(radians(ST_Y({{g}})))), {AT_SPOT_M} / 110000.0)
   AND ST_DWithin(geom::geography, {{g}}::geography, {AT_SPOT_M})
 ORDER BY geom::geography <-> {{g}}::geography, id LIMIT 1"""

_REVERSE = text(f"""
    SELECT a.id, a.address, a.city, a.zip, ST_Y(a.geom) AS lat, ST_X(a.geom) AS lon,
           ST_Distance(a.geom::geography, p.g::geography) AS distance_m,
           (SELECT parcel_id FROM parcels WHERE ST_Covers(geom, p.g) ORDER BY parcel_id LIMIT 1) AS parcel_id
      FROM (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) p
      -- the address at the spot; failing one, the nearest anywhere (by degrees: a hint, not an address)
      CROSS JOIN LATERAL (({AT_SPOT.format(g="p.g")})
                          UNION ALL
                          (SELECT * FROM address_points ORDER BY geom <-> p.g LIMIT 1) LIMIT 1) a""")


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
    return from_row(row, "exact", 1.0) if row else None
