"""What the agent console reads besides the JSON API: a caller's history, outlines, open work, labels.

Staff-only data (callers' phone numbers join here); nothing in this module feeds a public page.
"""
import json
from math import isfinite

from sqlalchemy import text

from gis.errors import InvalidInput
from gis.intake import WITHHELD, normalize_phone

HISTORY_LIMIT = 20
DISTRICT_LAYERS = ("wards", "precincts", "neighborhoods", "police_districts")
# Outline simplification in degrees (~10 m): enough for a base layer, small enough to ship once.
OUTLINE_TOLERANCE = 0.0001
MAX_BBOX_DEG = 0.5
OPEN_REQUESTS_LIMIT = 3000
MAX_LABEL_POINTS = 10

_HISTORY = text("""
SELECT r.public_id, r.service_code, sv.name AS service_name, r.status, r.address, r.requested_at,
       r.expected_at, r.closed_at, ST_Y(r.geom) AS lat, ST_X(r.geom) AS lon, c.name AS crew_name
  FROM service_requests r
  JOIN services sv ON sv.code = r.service_code
  LEFT JOIN crews c ON c.id = r.crew_id
 WHERE r.id IN (SELECT request_id FROM contacts WHERE phone = :phone)
 ORDER BY (r.status <> 'closed') DESC, r.requested_at DESC
 LIMIT :limit""")

_LATEST_CONTACT = text("""
SELECT first_name, last_name, phone, email FROM contacts WHERE phone = :phone
 ORDER BY created_at DESC, id DESC LIMIT 1""")

_OUTLINES = text("""
SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(json_build_object(
         'type', 'Feature',
         'properties', json_build_object('layer', l.name, 'code', d.code, 'name', d.name),
         'geometry', ST_AsGeoJSON(ST_SimplifyPreserveTopology(d.geom, :tol), 6)::json)), '[]'::json))
  FROM districts d JOIN layers l ON l.id = d.layer_id
 WHERE l.name = :layer""")

_OPEN_IN_BBOX = text("""
SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(json_build_object(
         'type', 'Feature', 'id', r.id,
         'properties', json_build_object('public_id', r.public_id, 'service_code', r.service_code,
                                         'service_name', sv.name, 'status', r.status),
         'geometry', ST_AsGeoJSON(r.geom, 6)::json)), '[]'::json))
  FROM (SELECT * FROM service_requests
         WHERE status <> 'closed' AND geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326)
         ORDER BY requested_at DESC LIMIT :limit) r
  JOIN services sv ON sv.code = r.service_code""")

# The neighbourhood of each geocoder candidate, so "100 Tremont St" reads "Downtown" vs "Brighton".
_NEIGHBOURHOODS = text("""
SELECT pt.i, d.name
  FROM jsonb_to_recordset(CAST(:points AS jsonb)) AS pt(i int, lat float8, lon float8)
  LEFT JOIN LATERAL (
    SELECT d.name FROM district_parts d     -- the polygons in small pieces (migration 0019)
     WHERE d.layer = 'neighborhoods' AND ST_Covers(d.geom, ST_SetSRID(ST_MakePoint(pt.lon, pt.lat), 4326))
     ORDER BY d.code LIMIT 1) d ON true
 ORDER BY pt.i""")

# One line per ticket (a ticket created and then joined by two more callers is one line), at its latest
# event of the kinds and actors asked for.
_RECENT_WORK = text("""
SELECT * FROM (
  SELECT DISTINCT ON (r.id) r.public_id, sv.name AS service_name, r.status, r.address, r.requested_at, e.actor,
         e.kind, e.at, c.name AS crew_name, ST_Y(r.geom) AS lat, ST_X(r.geom) AS lon
    FROM request_events e
    JOIN service_requests r ON r.id = e.request_id
    JOIN services sv ON sv.code = r.service_code
    LEFT JOIN crews c ON c.id = r.crew_id
   WHERE e.kind IN ('created', 'caller_attached')
     AND CASE WHEN CAST(:actor AS text) IS NULL
              THEN split_part(e.actor, ':', 1) IN ('agent', 'supervisor', 'admin')
              ELSE e.actor = CAST(:actor AS text) END
   ORDER BY r.id, e.at DESC, e.id DESC) latest
 ORDER BY at DESC LIMIT :limit""")


def _phone(raw):
    phone = normalize_phone(str(raw or "")[:40])
    if not phone and str(raw or "").strip().lower() in (*WITHHELD, "anonymous", "restricted", "private"):
        raise InvalidInput("the caller's number is withheld: ask for a phone number to text updates to",
                           field="phone")
    if not phone:
        raise InvalidInput("give the caller's phone number (e.g. +1 617 555 0142)", field="phone")
    return phone


def _iso(value):
    return value.isoformat() if value is not None else None


def caller(conn, raw_phone):
    """The caller behind a phone number: prefill (latest contact details) and their tickets, open first."""
    phone = _phone(raw_phone)
    latest = conn.execute(_LATEST_CONTACT, {"phone": phone}).first()
    rows = conn.execute(_HISTORY, {"phone": phone, "limit": HISTORY_LIMIT})
    tickets = [{**dict(r._mapping), "requested_at": _iso(r.requested_at), "expected_at": _iso(r.expected_at),
                "closed_at": _iso(r.closed_at)} for r in rows]
    contact = dict(latest._mapping) if latest else {"first_name": None, "last_name": None, "phone": phone,
                                                    "email": None}
    return {"phone": phone, "contact": contact, "tickets": tickets,
            "open": sum(1 for t in tickets if t["status"] != "closed")}


def district_outlines(conn, layer):
    """A district layer as simplified GeoJSON (the console's base map until vector tiles exist)."""
    if layer not in DISTRICT_LAYERS and layer != "city_boundary":
        raise InvalidInput(f"no district layer {str(layer)[:40]!r}", field="layer")
    return conn.scalar(_OUTLINES, {"layer": layer, "tol": OUTLINE_TOLERANCE})


def open_requests(conn, bbox):
    """Open requests inside bbox "w,s,e,n" (newest first, capped) as GeoJSON."""
    try:
        w, s, e, n = (float(v) for v in str(bbox).split(","))
    except ValueError:
        raise InvalidInput("bbox must be four numbers: west,south,east,north", field="bbox") from None
    if not all(isfinite(v) for v in (w, s, e, n)) or w >= e or s >= n:
        raise InvalidInput("bbox must be finite with west < east and south < north", field="bbox")
    if e - w > MAX_BBOX_DEG or n - s > MAX_BBOX_DEG:  # the whole city at once is the tiles' job
        cx, cy = (w + e) / 2, (s + n) / 2
        w, e = cx - MAX_BBOX_DEG / 2, cx + MAX_BBOX_DEG / 2
        s, n = cy - MAX_BBOX_DEG / 2, cy + MAX_BBOX_DEG / 2
    return conn.scalar(_OPEN_IN_BBOX, {"w": w, "s": s, "e": e, "n": n, "limit": OPEN_REQUESTS_LIMIT})


def neighbourhoods(conn, points):
    """The neighbourhood name for each (lat, lon), in order (None outside every neighbourhood)."""
    points = list(points)[:MAX_LABEL_POINTS]
    clean = []
    for i, (lat, lon) in enumerate(points):
        lat, lon = float(lat), float(lon)
        if not (isfinite(lat) and isfinite(lon)):
            raise InvalidInput("points must be finite numbers", field="pt")
        clean.append({"i": i, "lat": lat, "lon": lon})
    if not clean:
        return []
    return [r.name for r in conn.execute(_NEIGHBOURHOODS, {"points": json.dumps(clean)})]


def recent_work(conn, user, limit=15):
    """Tickets created or joined by agents, newest first: an agent's own; a supervisor sees every agent's."""
    actor = None if user.role in ("supervisor", "admin") else f"{user.role}:{user.username}"
    rows = conn.execute(_RECENT_WORK, {"actor": actor, "limit": limit})
    return [{**dict(r._mapping), "requested_at": _iso(r.requested_at), "at": _iso(r.at)} for r in rows]
