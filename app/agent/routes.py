"""Thin routes for the console: parse → app/agent/service.py or gis → render / JSON. Staff only."""
import json

from flask import Response, current_app, jsonify, render_template, request
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from app.agent import bp, service
from app.agent.events import hub_for, sse_stream
from app.auth import roles_required
from app.extensions import db
from gis import audit, lifecycle
from gis.errors import InvalidInput, Pin311Error

STAFF = ("agent", "supervisor")


def _tiles_available():
    """True once the vector-tile service (/tiles/{layer}/{z}/{x}/{y}.mvt) is registered in this app."""
    return any(rule.rule.startswith("/tiles/") for rule in current_app.url_map.iter_rules())


def _console(call=None, call_error=None):
    settings = {
        "basemap": current_app.config.get("BASEMAP_URL") or None,
        "tiles": _tiles_available(),
        "duplicateRadius": current_app.config.get("DUPLICATE_RADIUS_M", 150),
        "role": current_user.role,
    }
    return render_template("agent/console.html", settings=settings, call=call, call_error=call_error)


@bp.get("/")
@roles_required(*STAFF)
def console():
    return _console()


@bp.get("/call")
@roles_required(*STAFF)
def screen_pop():
    """Opened by the contact-centre software for an incoming call: /agent/call?from=+16175550142."""
    raw = request.args.get("from") or request.args.get("From") or ""
    try:
        call = service.caller(db.connection(), raw)
    except Pin311Error as exc:
        return _console(call_error=exc.message)
    _audit_caller_view(call, "agent.screen_pop")
    return _console(call=call)


def _audit_caller_view(call, context):
    """The contact audit trail (gis/audit.py): this agent saw the contacts behind this phone number."""
    conn = db.connection()
    audit.viewed_by_phone(conn, f"{current_user.role}:{current_user.username}", call["phone"],
                          fields=("name", "phone", "email"), context=context, ip=request.remote_addr)
    conn.commit()


@bp.get("/callers")
@roles_required(*STAFF)
def caller_history():
    """A caller's details and tickets by phone number (the console's look-up box)."""
    call = service.caller(db.connection(), request.args.get("phone"))
    _audit_caller_view(call, "agent.caller_history")
    return jsonify(call)


@bp.post("/requests/<public_id>/callers")
@roles_required(*STAFF)
def attach_caller(public_id):
    """Attach the caller on the line to an existing (duplicate) request instead of opening a new one."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    contact = body.get("contact") if isinstance(body.get("contact"), dict) else {}
    actor = f"{current_user.role}:{current_user.username}"
    ticket = lifecycle.attach_caller(db.connection(), public_id, contact, actor, note=body.get("note"))
    expected = ticket["expected_at"].isoformat() if ticket["expected_at"] else None
    return jsonify(public_id=ticket["public_id"], status=ticket["status"], service_name=ticket["service_name"],
                   crew=ticket["crew"], expected_at=expected, attached=True)


@bp.get("/csrf-token")
@roles_required(*STAFF)
def csrf_token():
    """A fresh CSRF token for a console whose session was renewed in another tab."""
    return jsonify(token=generate_csrf())


@bp.get("/recent")
@roles_required(*STAFF)
def recent():
    return jsonify(tickets=service.recent_work(db.connection(), current_user))


@bp.get("/outlines/<layer>.geojson")
@roles_required(*STAFF)
def outlines(layer):
    """District outlines as GeoJSON: the console's base map when the vector tiles are not there."""
    response = Response(_json_text(service.district_outlines(db.connection(), layer)),
                        mimetype="application/geo+json")
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@bp.get("/open-requests.geojson")
@roles_required(*STAFF)
def open_requests():
    return Response(_json_text(service.open_requests(db.connection(), request.args.get("bbox", ""))),
                    mimetype="application/geo+json")


@bp.get("/neighbourhoods")
@roles_required(*STAFF)
def neighbourhoods():
    """?pt=lat,lon&pt=… → the neighbourhood of each point (labels for geocoder candidates)."""
    points = []
    for value in request.args.getlist("pt"):
        try:
            lat, lon = value.split(",")
            points.append((float(lat), float(lon)))
        except ValueError:
            raise InvalidInput("each pt must be lat,lon", field="pt") from None
    return jsonify(neighbourhoods=service.neighbourhoods(db.connection(), points))


@bp.get("/events")
@roles_required(*STAFF)
def events():
    """Server-sent events: every new or changed request (gis.live, asked once a second per process)."""
    config = current_app.config
    hub = hub_for(current_app._get_current_object())
    q = hub.subscribe(limit=config["LIVE_STREAMS"])
    if q is None:   # every stream thread of this process is taken: the console polls and asks again later
        response = jsonify(error="busy", message="live updates are busy on this server; the console refreshes "
                                                 "by itself and tries again shortly")
        response.status_code, response.headers["Retry-After"] = 503, "30"
        return response
    stream = sse_stream(hub, q, config.get("AGENT_SSE_KEEPALIVE_SECONDS", 15), config["LIVE_STREAM_SECONDS"])
    response = Response(stream, mimetype="text/event-stream")
    response.call_on_close(lambda: hub.unsubscribe(q))    # also when the stream never started
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"   # nginx: do not buffer the stream
    return response


def _json_text(value):
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
