"""Thin routes of the public site: parse → app.public.service / gis.public → render."""
from flask import abort, current_app, jsonify, redirect, render_template, request, send_file, url_for

from app.extensions import db, limiter
from app.public import bp, service
from gis import media
from gis.errors import Pin311Error
from gis.models import STATUSES
from gis.public import status_with_history


def _settings():
    return {"basemap": current_app.config.get("BASEMAP_URL") or "", "tiles": True}


@bp.get("/map")
def status_map():
    return render_template("public/map.html", groups=service.services_by_group(db.connection()),
                           statuses=STATUSES, settings=_settings())


@bp.get("/requests")
def find_request():
    number = request.args.get("number", "")
    if number:
        card = service.lookup(db.connection(), number)
        if card:
            return redirect(url_for("public.request_status", public_id=card["public_id"]))
        return render_template("public/find.html", number=number, missing=True), 404
    return render_template("public/find.html", number="", missing=False)


@bp.get("/requests/<public_id>")
def request_status(public_id):
    card, events = status_with_history(db.connection(), public_id)
    if card is None:
        return render_template("public/find.html", number=public_id, missing=True), 404
    return render_template("public/status.html", card=card, events=events)


@bp.get("/requests/<public_id>.json")
def request_card(public_id):
    card, events = status_with_history(db.connection(), public_id)
    if card is None:
        return jsonify(error="not_found", message=f"no request {public_id[:20]!r}"), 404
    return jsonify(card={**card, "url": url_for("public.request_status", public_id=card["public_id"])},
                   history=events)


@bp.get("/near")
def near_me():
    args = request.args
    if not (args.get("address") or args.get("lat")):
        return render_template("public/near.html", place=None, results=None, error=None)
    try:
        place, lat, lon, results = service.near_place(db.connection(), args.get("lat"), args.get("lon"),
                                                      args.get("address"), args.get("radius", 400))
    except Pin311Error as exc:
        return render_template("public/near.html", place=None, results=None, error=exc.message), exc.status
    if args.get("format") == "json":
        return jsonify(place=place, lat=lat, lon=lon, requests=results)
    return render_template("public/near.html", place=place, results=results, error=None)


@bp.route("/report", methods=["GET"])
def report_form():
    conn = db.connection()
    chosen = request.args.get("service_code") or ""
    return render_template("public/report.html", groups=service.services_by_group(conn),
                           chosen=_chosen(conn, chosen), form={}, error=None, settings=_settings())


@bp.get("/report/questions/<code>")
def report_questions(code):
    svc = _chosen(db.connection(), code)
    if svc is None:
        abort(404)
    return render_template("public/_questions.html", chosen=svc, form={})


def _chosen(conn, code):
    from gis.services import catalogue
    try:
        return catalogue.get(conn, code, public_only=True) if code else None
    except Pin311Error:
        return None


def _report_limit():
    return current_app.config["PUBLIC_REPORT_LIMIT"]


@bp.post("/report")
@limiter.limit(_report_limit, methods=["POST"])
def report_submit():
    conn = db.connection()
    upload = request.files.get("photo")
    photo = upload.read(media.MAX_BYTES + 1) if upload and upload.filename else None
    try:
        report = service.report_from_form(request.form, photo)
        ticket = service.submit_report(conn, report, current_app.config["MEDIA_DIR"],
                                       lambda name: url_for("public.photo", name=name, _external=True))
    except Pin311Error as exc:
        return render_template("public/report.html", groups=service.services_by_group(conn),
                               chosen=_chosen(conn, request.form.get("service_code", "")), form=request.form,
                               error=exc, candidates=getattr(exc, "candidates", None),
                               settings=_settings()), exc.status
    return render_template("public/reported.html", ticket=ticket), 201


@bp.get("/photos/<name>.jpg")
def photo(name):
    if not service.photo_is_public(db.connection(), name):
        abort(404)
    full, _ = media.paths(current_app.config["MEDIA_DIR"], name)
    if not full.exists():
        abort(404)
    return send_file(full, mimetype="image/jpeg", max_age=3600)
