"""Area sweeps (Buffalo's "Clean Sweep"): every open request in an area to one crew by a target date.

An area is a GeoJSON Polygon/MultiPolygon drawn on the map (EPSG:4326) or a set of districts of one
layer. `preview` lists the open requests inside; `create` records the sweep and its members, then
reassigns each request through gis.lifecycle.apply, so each gets its `reassigned` event and the
`notify` outbox row that tells its callers (a request already with that crew only gets the new due
date and a staff note). Callers see a neutral note; the sweep's name stays with staff. `progress`
counts closed of taken, by category.
"""
import json
from datetime import date, datetime

from sqlalchemy import text

from gis import lifecycle
from gis.db import city_today
from gis.errors import InvalidInput, NotFound

MAX_VERTICES = 2000
MAX_REQUESTS = 5000


def area_sql(conn, polygon=None, layer=None, codes=None):
    """The area as GeoJSON MultiPolygon text (EPSG:4326), read and made valid by PostGIS.

    `polygon` is a drawn GeoJSON Polygon/MultiPolygon (or a Feature holding one); otherwise the union
    of the districts `codes` of district layer `layer`.
    """
    if polygon:
        geom = polygon.get("geometry", polygon) if isinstance(polygon, dict) else None
        if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
            raise InvalidInput("the area must be a GeoJSON Polygon or MultiPolygon", field="area")
        if len(json.dumps(geom)) > MAX_VERTICES * 60:
            raise InvalidInput("the area has too many vertices", field="area")
        raw = json.dumps(geom)
        try:
            row = conn.execute(text("""
                SELECT ST_IsValid(g) AS valid, ST_AsGeoJSON(ST_Multi(ST_MakeValid(g))) AS area,
                       ST_Area(g::geography) / 1e6 AS km2
                  FROM (SELECT ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326) AS g) x"""), {"g": raw}).one()
        except Exception:
            conn.rollback()
            raise InvalidInput("the area is not a readable polygon", field="area") from None
        if not row.km2:
            raise InvalidInput("the area is empty: draw at least three points", field="area")
        return row.area
    if layer and codes:
        codes = [str(c)[:64] for c in codes][:500]
        row = conn.execute(text("""
            SELECT ST_AsGeoJSON(ST_Multi(ST_Union(d.geom))) AS area, count(*) AS n
              FROM districts d JOIN layers l ON l.id = d.layer_id
             WHERE l.name = :layer AND l.kind = 'district' AND d.code = ANY(:codes)"""),
                           {"layer": str(layer)[:64], "codes": codes}).one()
        if not row.n:
            raise InvalidInput("no such districts in that layer", field="districts")
        return row.area
    raise InvalidInput("draw an area or pick districts", field="area")


_INSIDE = """
SELECT r.id, r.public_id, r.service_code, s.name AS service_name, r.status, r.address,
       r.requested_at, r.expected_at, c.code AS crew, ST_Y(r.geom) AS lat, ST_X(r.geom) AS lon
  FROM service_requests r JOIN services s ON s.code = r.service_code
  LEFT JOIN crews c ON c.id = r.crew_id
 WHERE r.status <> 'closed'
   AND ST_Intersects(r.geom, ST_SetSRID(ST_GeomFromGeoJSON(:area), 4326))
 ORDER BY s.name, r.requested_at"""


def preview(conn, area):
    """Open requests inside `area` (GeoJSON text from area_sql) and the count per category."""
    rows = [dict(r._mapping) for r in conn.execute(text(_INSIDE + " LIMIT :lim"),
                                                   {"area": area, "lim": MAX_REQUESTS + 1})]
    if len(rows) > MAX_REQUESTS:
        raise InvalidInput(f"more than {MAX_REQUESTS} open requests in that area: draw a smaller one",
                           field="area")
    by_cat = conn.execute(text("""
        SELECT r.service_code, s.name AS service_name, count(*) AS open
          FROM service_requests r JOIN services s ON s.code = r.service_code
         WHERE r.status <> 'closed' AND ST_Intersects(r.geom, ST_SetSRID(ST_GeomFromGeoJSON(:area), 4326))
         GROUP BY 1, 2 ORDER BY 3 DESC, 2"""), {"area": area})
    return {"requests": rows, "categories": [dict(r._mapping) for r in by_cat], "total": len(rows)}


def _target(raw):
    if isinstance(raw, date):
        return raw
    try:
        day = datetime.strptime(str(raw or "").strip(), "%Y-%m-%d").date()
    except ValueError:
        raise InvalidInput("target date must be a date like 2026-12-01", field="target_date") from None
    if day < city_today():                                     # the city's today, not the server's
        raise InvalidInput("the target date is in the past", field="target_date")
    return day


def create(conn, name, area, crew_code, target_date, actor, categories=None):
    """Record a sweep over `area` and reassign every open request inside to the crew; returns its id.

    The sweep and its members are one transaction; each reassignment then commits on its own through
    gis.lifecycle.apply (its event + notify row), and the target date becomes each request's expected
    date (SLA and overdue follow it). A request closed meanwhile is skipped, not failed.
    """
    name = str(name or "").strip()[:200]
    if not name:
        raise InvalidInput("give the sweep a name", field="name")
    day = _target(target_date)
    crew_id = conn.scalar(text("SELECT id FROM crews WHERE code = :c"), {"c": str(crew_code or "")[:64]})
    if crew_id is None:
        raise InvalidInput(f"no crew {str(crew_code or '')[:64]!r}", field="crew")
    if categories is not None and (not isinstance(categories, (list, tuple)) or not categories):
        raise InvalidInput("tick at least one category", field="categories")
    cats = [str(c)[:64] for c in categories] if categories is not None else None
    try:
        sweep_id = conn.scalar(text("""
            INSERT INTO sweeps (name, crew_id, target_date, area, created_by)
            VALUES (:name, :crew, :day, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(:area), 4326)), :actor)
            RETURNING id"""), {"name": name, "crew": crew_id, "day": day, "area": area, "actor": actor})
        ids = conn.execute(text(f"""
            INSERT INTO sweep_requests (sweep_id, request_id)
            SELECT :sid, id FROM ({_INSIDE}) x WHERE CAST(:cats AS text[]) IS NULL OR service_code = ANY(:cats)
            RETURNING request_id"""), {"sid": sweep_id, "area": area, "cats": cats}).scalars().all()
        if not ids:
            raise InvalidInput("no open requests in that area", field="area")
        if len(ids) > MAX_REQUESTS:
            raise InvalidInput(f"more than {MAX_REQUESTS} open requests: draw a smaller area", field="area")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    # Callers hear of a date, never the sweep's name: that is the staff's own label ("crew X too slow").
    public_note = f"Scheduled for a visit with other requests in the area, by {day.isoformat()}."
    internal_note = f"Area sweep “{name}”, target date {day.isoformat()}."
    data = {"sweep_id": sweep_id, "target_date": day.isoformat()}
    for rid in sorted(ids):
        key = f"sweep-{sweep_id}-{rid}"
        try:
            if _due_by_if_with_crew(conn, rid, crew_id, day):
                # Already this crew's: nothing to hand over and nothing to tell the caller; the new due
                # date commits with a staff note (its publish row carries the date to the map layers).
                lifecycle.apply(conn, rid, "note", actor, internal_note=internal_note, data=data,
                                idempotency_key=key)
            else:
                lifecycle.apply(conn, rid, "reassign", actor, crew_code=crew_code, public_note=public_note,
                                internal_note=internal_note, data=data, idempotency_key=key, due_by=day)
        except Exception as exc:  # closed by a crew since the preview: keep it in the sweep, counted closed
            if getattr(exc, "code", None) != "conflict":
                raise
    return sweep_id


def _due_by_if_with_crew(conn, request_id, crew_id, day):
    """Set an open request already with `crew_id` due by the end of `day` (as lifecycle's due_by does),
    uncommitted; False (nothing changed) when it is with another crew or closed."""
    return conn.execute(text("""
        UPDATE service_requests SET expected_at = CAST(:d AS date) + 1 - interval '1 second', updated_at = now()
         WHERE id = :id AND crew_id = :crew AND status <> 'closed' RETURNING id"""),
                        {"d": day, "id": request_id, "crew": crew_id}).first() is not None


def progress(conn, sweep_id):
    """The sweep, its totals (taken, closed, still open, with this crew) and per-category counts."""
    sweep = conn.execute(text("""
        SELECT s.id, s.name, s.target_date, s.created_by, s.created_at, c.code AS crew, c.name AS crew_name,
               ST_AsGeoJSON(s.area, 6) AS area
          FROM sweeps s JOIN crews c ON c.id = s.crew_id WHERE s.id = :id"""), {"id": int(sweep_id)}).first()
    if sweep is None:
        raise NotFound(f"no sweep {sweep_id}")
    cats = [dict(r._mapping) for r in conn.execute(text("""
        SELECT r.service_code, sv.name AS service_name, count(*) AS taken,
               count(*) FILTER (WHERE r.status = 'closed') AS closed
          FROM sweep_requests m JOIN service_requests r ON r.id = m.request_id
          JOIN services sv ON sv.code = r.service_code
         WHERE m.sweep_id = :id GROUP BY 1, 2 ORDER BY 3 DESC, 2"""), {"id": sweep.id})]
    requests = [dict(r._mapping) for r in conn.execute(text("""
        SELECT r.public_id, sv.name AS service_name, r.status, r.address, c.code AS crew,
               ST_Y(r.geom) AS lat, ST_X(r.geom) AS lon
          FROM sweep_requests m JOIN service_requests r ON r.id = m.request_id
          JOIN services sv ON sv.code = r.service_code LEFT JOIN crews c ON c.id = r.crew_id
         WHERE m.sweep_id = :id ORDER BY r.status = 'closed', sv.name, r.public_id"""), {"id": sweep.id})]
    taken = sum(c["taken"] for c in cats)
    closed = sum(c["closed"] for c in cats)
    return {**dict(sweep._mapping), "taken": taken, "closed": closed, "open": taken - closed,
            "pct": round(100 * closed / taken) if taken else 0, "categories": cats, "requests": requests}


def all_sweeps(conn):
    return [dict(r._mapping) for r in conn.execute(text("""
        SELECT s.id, s.name, s.target_date, c.code AS crew, count(m.request_id) AS taken,
               count(m.request_id) FILTER (WHERE r.status = 'closed') AS closed
          FROM sweeps s JOIN crews c ON c.id = s.crew_id
          LEFT JOIN sweep_requests m ON m.sweep_id = s.id LEFT JOIN service_requests r ON r.id = m.request_id
         GROUP BY s.id, c.code ORDER BY s.created_at DESC LIMIT 200"""))]


def crews(conn):
    return [dict(r._mapping) for r in conn.execute(text("SELECT code, name FROM crews ORDER BY name"))]
