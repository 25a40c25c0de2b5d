"""Thin routes for the crew view: parse → gis.crew / gis.media → render or JSON. Crew and supervisors.

Actions are POSTed by the page's script (CSRF header, an idempotency key per action) so that an
action taken without a connection can be queued in the page and replayed later without doubling.
Each names the user who took it: a page left open while someone else signed in on the same browser
must not act under their name. The pages open without a connection through a service worker
(app/static/js/crew-sw.js, served below at /crew/sw.js so that it controls the crew pages only).
"""
from pathlib import Path

from flask import current_app, jsonify, render_template, request, send_file
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from app.auth import roles_required
from app.crew import bp
from app.extensions import db
from gis import audit, crew, crew_route, media
from gis.errors import Conflict, InvalidInput, NotFound

CREW = ("crew", "supervisor")
PHOTO_VIEWERS = ("crew", "supervisor", "agent")


class OtherUser(Conflict):
    """The action was taken by someone other than who is signed in now: the page holds it for them."""
    code = "other_user"


def _tiles_available():
    return any(rule.rule.startswith("/tiles/") for rule in current_app.url_map.iter_rules())


def _settings(**more):
    return {"tiles": _tiles_available(), "basemap": current_app.config.get("BASEMAP_URL") or None,
            "role": current_user.role, "user": current_user.username, "hasCrew": bool(current_user.crew_ids),
            **more}


def _position():
    lat, lon = request.args.get("lat"), request.args.get("lon")
    if lat in (None, "") or lon in (None, ""):
        raise InvalidInput("give your position as lat and lon", field="lat")
    return lat, lon


@bp.get("/")
@roles_required(*CREW)
def near_me():
    conn = db.connection()
    return render_template("crew/near.html", settings=_settings(), categories=crew.categories(conn))


@bp.get("/near.json")
@roles_required(*CREW)
def near_json():
    lat, lon = _position()
    default_scope = "mine" if current_user.crew_ids else "all"
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        raise InvalidInput("limit must be a whole number", field="limit") from None
    tickets = crew.near_me(db.connection(), current_user, lat, lon,
                           scope=request.args.get("scope") or default_scope,
                           service=request.args.get("service") or None,
                           overdue=request.args.get("overdue") in ("1", "true", "on"), limit=limit)
    return jsonify(tickets=tickets)


@bp.get("/route.json")
@roles_required(*CREW)
def route_json():
    lat, lon = _position()
    return jsonify(crew_route.plan_route(db.connection(), current_user, lat, lon))


@bp.get("/tickets/<public_id>")
@roles_required(*CREW)
def ticket(public_id):
    conn = db.connection()
    detail = crew.ticket_detail(conn, current_user, public_id)
    if detail["contacts"]:  # the contact audit trail (gis/audit.py): this crew member saw the callers' names
        audit.viewed(conn, f"{current_user.role}:{current_user.username}", request_ids=[detail["id"]],
                     fields=("name",), context="crew.ticket", ip=request.remote_addr)
        conn.commit()
    settings = _settings(ticket={"public_id": detail["public_id"], "lat": detail["lat"], "lon": detail["lon"],
                                 "status": detail["status"]})
    return render_template("crew/ticket.html", t=detail, settings=settings,
                           crews=crew.crew_choices(conn), reasons=crew.CLOSE_REASONS)


@bp.get("/tickets/<public_id>/state")
@roles_required(*CREW)
def ticket_state(public_id):
    """The ticket as it is now, for the page to follow each action's answer (no callers: no audit entry)."""
    t = crew.ticket_detail(db.connection(), current_user, public_id)
    return jsonify(status=t["status"], may_act=t["may_act"], crew_code=t["crew_code"],
                   head=render_template("crew/_ticket_head.html", t=t),
                   history=render_template("crew/_history.html", t=t))


@bp.post("/tickets/<public_id>/actions")
@roles_required(*CREW)
def action(public_id):
    form = request.form
    taken_by = form.get("user")
    if taken_by and taken_by != current_user.username:
        raise OtherUser(f"this action was taken by {taken_by[:80]}, who is no longer signed in here")
    if form.get("action") == "duplicate":    # supervisors: close as a duplicate of another ticket
        ticket = crew.mark_duplicate(db.connection(), current_user, public_id, form.get("duplicate_of"),
                                     key=form.get("key"), note=form.get("note"))
    else:
        upload = request.files.get("photo")
        photo = upload.read(media.MAX_BYTES + 1) if upload and upload.filename else None
        ticket = crew.act(db.connection(), current_user, public_id, form.get("action", ""), key=form.get("key"),
                          lat=form.get("lat") or None, lon=form.get("lon") or None,
                          reason=form.get("reason") or None, note=form.get("note"),
                          internal_note=form.get("internal_note"), crew_code=form.get("crew") or None,
                          photo=photo, media_dir=current_app.config["MEDIA_DIR"])
    return jsonify(public_id=ticket["public_id"], status=ticket["status"], repeated=ticket["repeated"],
                   crew=ticket["crew"])


@bp.get("/photos/<name>.jpg")
@roles_required(*PHOTO_VIEWERS)
def photo(name):
    return _photo(name, thumb=False)


@bp.get("/photos/<name>.thumb.jpg")
@roles_required(*PHOTO_VIEWERS)
def photo_thumb(name):
    return _photo(name, thumb=True)


def _photo(name, thumb):
    if not media.staff_photo_exists(db.connection(), name):
        raise NotFound("no such photo")
    full, small = media.paths(current_app.config["MEDIA_DIR"], name)
    path = small if thumb else full
    if not path.exists():
        raise NotFound("no such photo")
    response = send_file(path, mimetype="image/jpeg", max_age=3600)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.get("/sw.js")
def service_worker():
    """The crew pages' service worker. Code only, nobody's data, so no sign-in: a browser fetches it
    again to look for a new version whoever is signed in. Never cached by HTTP, so a new version is
    seen on the next visit."""
    path = Path(current_app.static_folder) / "js" / "crew-sw.js"
    response = send_file(path, mimetype="text/javascript", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/csrf-token")
@roles_required(*CREW)
def csrf_token():
    """A fresh CSRF token, for a page that replays its queue after the session was renewed."""
    return jsonify(token=generate_csrf())
