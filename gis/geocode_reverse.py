"""Reverse geocoding (a point → the nearest gazetteer address and its parcel) and gazetteer entries by id."""
from sqlalchemy import text

from gis.geocode_candidates import from_row

_REVERSE = text("""
    SELECT a.id, a.address, a.city, a.zip, ST_Y(a.geom) AS lat, ST_X(a.geom) AS lon,
           ST_Distance(a.geom::geography, p.g::geography) AS distance_m,
           (SELECT parcel_id FROM parcels WHERE ST_Covers(geom, p.g) ORDER BY parcel_id LIMIT 1) AS parcel_id
      FROM (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) p
      CROSS JOIN LATERAL (SELECT * FROM address_points ORDER BY geom <-> p.g LIMIT 1) a""")


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
