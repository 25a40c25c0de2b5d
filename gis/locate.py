"""Point → parcel + every district, and the crew a service's routing rules choose, in SQL.

LOCATE is one statement: whether the point is inside the jurisdiction, the parcel that covers it and,
for every district layer, the district that covers it. A point on a shared boundary is covered by
both neighbours; DISTINCT ON (layer) ORDER BY code gives it one deterministic answer.

The same CTE text is embedded in the intake statement (gis/intake.py), so a preview and a submission
can never disagree about where a point is or which crew gets it. The polygons are read as their small
pieces in district_parts (migration 0019): the same answers for a fraction of the work.
"""
from dataclasses import dataclass, field

from sqlalchemy import text

from gis import prepared
from gis.errors import InvalidLocation

# :lon, :lat → p(g); loc(inside, parcel, districts)
LOCATE_CTE = """
p AS (SELECT ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), 4326) AS g),
loc AS (
  SELECT
    (NOT EXISTS (SELECT 1 FROM layers WHERE kind = 'boundary')
     OR EXISTS (SELECT 1 FROM district_parts b WHERE b.kind = 'boundary' AND ST_Covers(b.geom, p.g))) AS inside,
    (SELECT jsonb_build_object('parcel_id', pa.parcel_id, 'attributes', pa.attributes)
       FROM parcels pa WHERE ST_Covers(pa.geom, p.g) ORDER BY pa.parcel_id LIMIT 1) AS parcel,
    (SELECT coalesce(jsonb_object_agg(s.layer, jsonb_build_object('code', s.code, 'name', s.name)), '{}'::jsonb)
       FROM (SELECT DISTINCT ON (d.layer) d.layer, d.code, d.name
               FROM district_parts d
              WHERE d.kind = 'district' AND ST_Covers(d.geom, p.g)
              ORDER BY d.layer, d.code) s) AS districts,
    p.g
  FROM p
)"""

# Given loc and a service code column `svc_code`, the rule that fires (lowest priority wins).
# The nearest strategy ranks on-duty crews of a pool (code prefix) by geodesic distance.
RULE_LATERAL = """
LEFT JOIN LATERAL (
  SELECT r.id AS rule_id,
         CASE r.strategy WHEN 'nearest' THEN (
             SELECT c.id FROM crews c
              WHERE c.on_duty AND c.last_position IS NOT NULL AND starts_with(c.code, r.value)
              ORDER BY c.last_position::geography <-> loc.g::geography LIMIT 1)
         ELSE r.crew_id END AS crew_id,
         CASE r.strategy
           WHEN 'district' THEN 'district ' || r.layer || '=' || r.district_code
           WHEN 'parcel_attribute' THEN 'parcel ' || r.attribute || '=' || coalesce(r.value, '')
           ELSE 'nearest on-duty crew of pool ' || r.value END AS rule_text
    FROM routing_rules r
   WHERE r.service_code = {svc_code}
     AND CASE r.strategy
           WHEN 'district' THEN loc.districts -> r.layer ->> 'code' = r.district_code
           WHEN 'parcel_attribute' THEN loc.parcel -> 'attributes' ->> r.attribute = r.value
           ELSE EXISTS (SELECT 1 FROM crews c WHERE c.on_duty AND c.last_position IS NOT NULL
                        AND starts_with(c.code, r.value))
         END
   ORDER BY r.priority, r.id LIMIT 1
) rule ON true"""

ROUTED_BY = """CASE WHEN rule.crew_id IS NOT NULL THEN 'rule ' || rule.rule_id || ': ' || rule.rule_text
                    WHEN s.default_crew_id IS NOT NULL THEN 'default crew of service'
                    ELSE 'unrouted' END"""

LOCATE_SQL = text(f"WITH {LOCATE_CTE} SELECT inside, parcel, districts FROM loc")
_LOCATE_STMT = prepared.Statement("pin311_locate", LOCATE_SQL.text, {"lat": "float8", "lon": "float8"})

ROUTE_ALL_SQL = text(f"""
WITH {LOCATE_CTE}
SELECT s.code, c.code AS crew_code, c.name AS crew_name, {ROUTED_BY} AS routed_by,
       now() + make_interval(hours => s.sla_hours) AS expected_at
  FROM loc CROSS JOIN services s
  {RULE_LATERAL.format(svc_code="s.code")}
  LEFT JOIN crews c ON c.id = coalesce(rule.crew_id, s.default_crew_id)
 WHERE s.active AND (CAST(:service AS text) IS NULL OR s.code = CAST(:service AS text))
 ORDER BY s.code""")


@dataclass
class Location:
    lat: float
    lon: float
    inside: bool
    parcel_id: str | None = None
    parcel_attributes: dict = field(default_factory=dict)
    districts: dict = field(default_factory=dict)   # layer → {"code", "name"}

    def as_dict(self):
        return {"lat": self.lat, "lon": self.lon, "inside_jurisdiction": self.inside,
                "parcel_id": self.parcel_id, "districts": self.districts}


def check_point(lat, lon):
    """Validated (lat, lon) floats, or InvalidLocation saying what is wrong (NaN, range, swapped)."""
    try:
        lat_f, lon_f = float(lat), float(lon)
    except (TypeError, ValueError):
        raise InvalidLocation("lat and long must be decimal numbers (WGS84 degrees)", field="lat") from None
    if lat_f != lat_f or lon_f != lon_f or lat_f in (float("inf"), float("-inf")) \
            or lon_f in (float("inf"), float("-inf")):
        raise InvalidLocation("lat and long must be finite numbers", field="lat")
    if not -90 <= lat_f <= 90 or not -180 <= lon_f <= 180:
        hint = " (are lat and long swapped?)" if -90 <= lon_f <= 90 and -180 <= lat_f <= 180 else ""
        raise InvalidLocation(f"lat must be within ±90 and long within ±180{hint}", field="lat")
    return lat_f, lon_f


def locate_point(conn, lat, lon):
    """The parcel and districts at a point, and whether it is inside the jurisdiction."""
    lat, lon = check_point(lat, lon)
    # Prepared, at driver level (no SQLAlchemy compilation): this runs on every pin drop and intake
    # preview, and should cost what the bare statement costs (bench/bench_locate.py).
    row = _LOCATE_STMT.run(conn, {"lat": lat, "lon": lon}).one()
    parcel = row.parcel or {}
    return Location(lat, lon, row.inside, parcel.get("parcel_id"), parcel.get("attributes") or {},
                    row.districts or {})


def route_preview(conn, lat, lon, service_code=None):
    """For every active service (or one), the crew its routing rules choose at this point."""
    lat, lon = check_point(lat, lon)
    rows = conn.execute(ROUTE_ALL_SQL, {"lat": lat, "lon": lon, "service": service_code})
    return [{"service_code": r.code, "crew": {"code": r.crew_code, "name": r.crew_name} if r.crew_code else None,
             "routed_by": r.routed_by, "expected_at": r.expected_at} for r in rows]


NEARBY_RADIUS_M = 150

_NEARBY = text("""
SELECT r.public_id, r.service_code, sv.name AS service_name, r.status, r.address, r.requested_at,
       ST_Y(r.geom) AS lat, ST_X(r.geom) AS lon,
       round(ST_Distance(r.geom::geography, p.g::geography)::numeric, 1) AS distance_m
  FROM (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) p
  JOIN service_requests r ON r.status <> 'closed'
       AND ST_DWithin(r.geom::geography, p.g::geography, :radius)
       -- a box in degrees at least `radius` metres wide, so the open-requests GiST index is used
       AND r.geom && ST_Expand(p.g, :radius / (111320.0 * cos(radians(CAST(:lat AS float8)))))
  JOIN services sv ON sv.code = r.service_code
 WHERE (CAST(:service AS text) IS NULL OR r.service_code = CAST(:service AS text)) AND r.duplicate_of IS NULL
 ORDER BY distance_m, r.requested_at DESC LIMIT 20""")


def nearby_open(conn, lat, lon, service_code=None, radius_m=None):
    """Open requests within radius_m metres (possible duplicates), nearest first."""
    lat, lon = check_point(lat, lon)
    radius = min(max(int(radius_m or NEARBY_RADIUS_M), 1), 5000)
    rows = conn.execute(_NEARBY, {"lat": lat, "lon": lon, "radius": radius, "service": service_code})
    return [{**dict(r._mapping), "distance_m": float(r.distance_m), "requested_at": r.requested_at.isoformat()}
            for r in rows]
