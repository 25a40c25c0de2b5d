"""Thin routes: parse → call gis → JSON."""
from flask import jsonify, request

from app.api import bp
from app.api.access import require
from app.extensions import csrf, db
from gis import geocode, intake, locate
from gis.errors import InvalidInput, NotFound
from gis.services import catalogue

csrf.exempt(bp)  # writes are CSRF-checked in access.require when the caller uses a session cookie
# No rate limit: staff consoles and the city's own integrations call this API; third parties come through
# Open311, which is rate limited per key.


def _json_body():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body


def _ticket_json(ticket):
    out = {k: v for k, v in ticket.items() if k not in ("id",)}
    for key in ("requested_at", "updated_at", "expected_at", "closed_at"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    return out


@bp.post("/requests")
def create_request():
    actor = require("api:write")
    body = _json_body()
    attributes = body.get("attributes") or {}
    contact = body.get("contact") or {}
    if not isinstance(attributes, dict) or not isinstance(contact, dict):
        raise InvalidInput("attributes and contact must be JSON objects")
    req = intake.NewRequest(
        service_code=body.get("service_code"), lat=body.get("lat"), lon=body.get("lon", body.get("long")),
        address=body.get("address"), address_id=body.get("address_id"), description=body.get("description"),
        attributes=attributes, media_url=body.get("media_url"), contact=contact,
        notify=body.get("notify", True) is not False, channel=body.get("channel") or "api", actor=actor,
        idempotency_key=request.headers.get("Idempotency-Key") or body.get("idempotency_key"))
    ticket = intake.submit_request(db.connection(), req)
    return jsonify(_ticket_json(ticket)), (201 if ticket["created"] else 200)


@bp.get("/requests/<public_id>")
def get_request(public_id):
    require("api:read")
    ticket = intake.find_ticket(db.connection(), public_id=public_id)
    if ticket is None:
        raise NotFound(f"no request {public_id[:32]!r}")
    return jsonify(_ticket_json(ticket))


@bp.get("/locate")
def locate_pin():
    """The agent's pin preview: parcel, districts, crew per service, nearest address, nearby open requests."""
    require("api:read")
    conn = db.connection()
    service = request.args.get("service_code") or None
    where = locate.locate_point(conn, request.args.get("lat"), request.args.get("lon"))
    body = where.as_dict()
    body["address"] = geocode.reverse(conn, where.lat, where.lon) if where.inside else None
    body["routing"] = [{**r, "expected_at": r["expected_at"].isoformat() if r["expected_at"] else None}
                       for r in locate.route_preview(conn, where.lat, where.lon, service)] if where.inside else []
    body["nearby"] = locate.nearby_open(conn, where.lat, where.lon, service,
                                        radius_m=request.args.get("radius", type=int) or None)
    return jsonify(body)


@bp.get("/geocode")
def geocode_address():
    require("api:read")
    q = request.args.get("q", "")
    limit = min(max(request.args.get("limit", 5, type=int) or 5, 1), 20)
    return jsonify(candidates=[c.as_dict() for c in geocode.geocode(db.connection(), q, limit=limit)])


@bp.get("/services")
def services():
    """Categories matching what a caller says (?q=dog), with their questions."""
    require("api:read")
    found = catalogue.search(db.connection(), request.args.get("q", ""), limit=request.args.get("limit", 50, type=int))
    return jsonify(services=[{**s.as_open311(), "attributes": list(s.attributes), "sla_hours": s.sla_hours,
                              "sensitive": s.sensitive, "public": s.public} for s in found])
