"""Open311 GeoReport v2 queries: the public view of requests with the spec's filters and our extensions.

Every read goes through `public_requests` (gis/public.py): no contacts, no free-text description,
sensitive services coarsened — what an Open311 client sees is what the public map shows.
"""
from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from gis.errors import InvalidInput
from gis.lifecycle import history

MAX_WINDOW = timedelta(days=90)
DEFAULT_LIMIT = 1000
MAX_PAGE_SIZE = 1000
MAX_IDS = 200


def parse_time(value, name):
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} must be a W3C date-time such as 2026-01-01T00:00:00Z", field=name) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _float(value, name):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number", field=name) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidInput(f"{name} must be a finite number", field=name)
    return number


def _int(value, name, default, low, high):
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number", field=name) from None
    if not low <= number <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}", field=name)
    return number


def build_filter(args):
    """(where SQL, params, limit, offset) from GeoReport v2 query parameters. Raises InvalidInput."""
    where, params = ["true"], {}
    ids = [i.strip() for i in (args.get("service_request_id") or "").split(",") if i.strip()]
    if ids:
        if len(ids) > MAX_IDS:
            raise InvalidInput(f"at most {MAX_IDS} service_request_id values", field="service_request_id")
        where.append("p.public_id = ANY(:ids)")
        params["ids"] = [i[:64] for i in ids]
    codes = [c.strip() for c in (args.get("service_code") or "").split(",") if c.strip()]
    if codes:
        where.append("p.service_code = ANY(:codes)")
        params["codes"] = [c[:64] for c in codes]
    statuses = {s.strip().lower() for s in (args.get("status") or "").split(",") if s.strip()}
    if statuses - {"open", "closed"}:
        raise InvalidInput("status must be open and/or closed", field="status")
    if statuses == {"open"}:
        where.append("p.status <> 'closed'")
    elif statuses == {"closed"}:
        where.append("p.status = 'closed'")
    start, end = parse_time(args.get("start_date"), "start_date"), parse_time(args.get("end_date"), "end_date")
    if not ids:  # a lookup by id is not limited to a date window
        if start and end and end - start > MAX_WINDOW:
            raise InvalidInput("start_date and end_date may not span more than 90 days", field="start_date")
        if start and end and end < start:
            raise InvalidInput("end_date is before start_date", field="end_date")
        end = end or (start + MAX_WINDOW if start else datetime.now(timezone.utc))
        start = start or end - MAX_WINDOW
        where.append("p.requested_at BETWEEN :start AND :end")
        params.update(start=start, end=end)
    for name, op in (("updated_after", ">="), ("updated_before", "<=")):
        moment = parse_time(args.get(name), name)
        if moment:
            where.append(f"p.updated_at {op} :{name}")
            params[name] = moment
    if args.get("lat") or args.get("long"):
        lat, lon = _float(args.get("lat"), "lat"), _float(args.get("long"), "long")
        radius = _float(args.get("radius") or 500, "radius")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not 0 < radius <= 20000:
            raise InvalidInput("lat/long out of range or radius not in (0, 20000] metres", field="lat")
        where.append("ST_DWithin(p.geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :radius)")
        params.update(lat=lat, lon=lon, radius=radius)
    if args.get("bbox"):
        parts = args.get("bbox").split(",")
        if len(parts) != 4:
            raise InvalidInput("bbox must be minLon,minLat,maxLon,maxLat", field="bbox")
        minx, miny, maxx, maxy = (_float(v, "bbox") for v in parts)
        if not (minx < maxx and miny < maxy):
            raise InvalidInput("bbox must be minLon,minLat,maxLon,maxLat with min < max", field="bbox")
        where.append("p.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)")
        params.update(minx=minx, miny=miny, maxx=maxx, maxy=maxy)
    page_size = _int(args.get("page_size"), "page_size", DEFAULT_LIMIT, 1, MAX_PAGE_SIZE)
    page = _int(args.get("page"), "page", 1, 1, 100000)
    return " AND ".join(where), params, page_size, (page - 1) * page_size


_SELECT = """
SELECT p.objectid, p.public_id, p.status, p.closure_reason, p.service_name, p.service_code, p.address,
       p.requested_at, p.updated_at, p.expected_at, p.media_url, p.districts, p.coarsened,
       ST_Y(p.geom) AS lat, ST_X(p.geom) AS lon, s.department,
       (SELECT e.public_note FROM request_events e WHERE e.request_id = p.objectid AND e.public_note IS NOT NULL
         ORDER BY e.at DESC, e.id DESC LIMIT 1) AS status_notes,
       r.channel, c.name AS crew_name, d.public_id AS duplicate_of
  FROM public_requests p
  JOIN services s ON s.code = p.service_code
  JOIN service_requests r ON r.id = p.objectid
  LEFT JOIN crews c ON c.id = r.crew_id
  LEFT JOIN service_requests d ON d.id = r.duplicate_of
 WHERE {where}
 ORDER BY p.requested_at DESC, p.objectid DESC
 LIMIT :limit OFFSET :offset"""


def find_requests(conn, args):
    where, params, limit, offset = build_filter(args)
    rows = conn.execute(text(_SELECT.format(where=where)), {**params, "limit": limit, "offset": offset})
    return [_request(conn, r, args.get("extensions") == "true") for r in rows]


def get_request(conn, public_id):
    rows = conn.execute(text(_SELECT.format(where="p.public_id = :pid")),
                        {"pid": str(public_id)[:64], "limit": 1, "offset": 0}).all()
    return [_request(conn, r, True) for r in rows]


def _iso(moment):
    return moment.isoformat(timespec="seconds") if moment else None


def _request(conn, r, extended):
    item = {
        "service_request_id": r.public_id, "status": "closed" if r.status == "closed" else "open",
        "status_notes": r.status_notes, "service_name": r.service_name, "service_code": r.service_code,
        "agency_responsible": r.department, "service_notice": None,
        "requested_datetime": _iso(r.requested_at), "updated_datetime": _iso(r.updated_at),
        "expected_datetime": _iso(r.expected_at), "address": r.address, "zipcode": None,
        "lat": round(r.lat, 6), "long": round(r.lon, 6), "media_url": r.media_url,
    }
    if extended:
        item["extended_attributes"] = {
            "detailed_status": r.status, "closure_reason": r.closure_reason, "districts": r.districts,
            "crew": r.crew_name, "channel": r.channel, "duplicate_of": r.duplicate_of,
            "location_coarsened": r.coarsened,
            "notes": [e for e in history(conn, r.objectid, public=True) if e.get("note")],
        }
    return item


def request_by_token(conn, token):
    row = conn.execute(text("SELECT p.public_id FROM service_requests r JOIN public_requests p ON p.objectid = r.id "
                            "WHERE r.idempotency_key = :t"), {"t": str(token)[:200]}).first()
    return row.public_id if row else None
