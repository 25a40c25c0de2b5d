"""Thin routes of the public site: parse → app.public.service / gis.public → render."""
import math
import uuid

from flask import abort, current_app, g, jsonify, redirect, render_template, request, send_file, url_for
from werkzeug.datastructures import MultiDict

from app.errors import error_response, retry_after_limit
from app.extensions import db, limiter
from app.public import bp, service
from gis import media
from gis.errors import Pin311Error
from gis.models import STATUSES
from gis.public import status_card, status_with_history


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
        choices = getattr(exc, "choices", None)
        if args.get("format") == "json":
            return jsonify(error=exc.code, message=exc.message, choices=choices), exc.status
        return render_template("public/near.html", place=None, results=None, error=exc.message,
                               choices=choices), exc.status
    if args.get("format") == "json":
        return jsonify(place=place, lat=lat, lon=lon, requests=results)
    return render_template("public/near.html", place=place, results=results, error=None)


@bp.route("/report", methods=["GET"])
def report_form():
    conn = db.connection()
    return _form_page(conn, _chosen(conn, request.args.get("service_code") or ""), MultiDict())


@bp.get("/report/questions/<code>")
def report_questions(code):
    svc = _chosen(db.connection(), code)
    if svc is None:
        abort(404)
    return render_template("public/_questions.html", chosen=svc, form=MultiDict())


def _chosen(conn, code):
    from gis.services import catalogue
    try:
        return catalogue.get(conn, code, public_only=True) if code else None
    except Pin311Error:
        return None


def _form_page(conn, chosen, form, error=None, status=200):
    """The report form, with what was typed (form) and what went wrong; a new idempotency key unless the
    page is this form again (then its key: sending it after fixing makes one ticket, not two)."""
    return render_template("public/report.html", groups=service.services_by_group(conn), chosen=chosen, form=form,
                           error=error, key=form.get("idempotency_key") or uuid.uuid4().hex,
                           max_photo_bytes=media.MAX_BYTES, settings=_settings()), status


def _report_limit():
    return current_app.config["PUBLIC_REPORT_LIMIT"]


def _report_made(response):
    # Only a report that made a ticket counts against the limit: a resident fixing a refused form, or
    # a double click answered with the first ticket, spends nothing.
    return g.get("report_created", False)


def _photo_url(name):
    """The stored (and published: Open311, map layers) address of a photo: from the configured site address
    when there is one; the Host header alone would let a sender point the link at any server."""
    site = current_app.config["PUBLIC_URL"]
    return f"{site}{url_for('public.photo', name=name)}" if site else url_for("public.photo", name=name, _external=True)


@bp.post("/report")
@limiter.limit(_report_limit, methods=["POST"], deduct_when=_report_made)
def report_submit():
    conn = db.connection()
    upload = request.files.get("photo")
    photo = upload.read(media.MAX_BYTES + 1) if upload and upload.filename else None
    try:
        report = service.report_from_form(request.form, photo)
        ticket = service.submit_report(conn, report, current_app.config["MEDIA_DIR"], _photo_url)
    except Pin311Error as exc:
        return _form_page(conn, _chosen(conn, request.form.get("service_code", "")), request.form, exc, exc.status)
    g.report_created = ticket["created"]
    # Post/Redirect/Get: reloading the thank-you page asks for it again instead of sending the form again
    again = {} if ticket["created"] else {"again": 1}
    return redirect(url_for("public.report_sent", public_id=ticket["public_id"], **again), 303)


@bp.get("/report/sent/<public_id>")
def report_sent(public_id):
    card = status_card(db.connection(), public_id)
    if card is None:
        abort(404)
    return render_template("public/reported.html", ticket=card, again=bool(request.args.get("again")))


@bp.errorhandler(429)
def too_many(exc):
    headers = retry_after_limit()
    if request.endpoint != "public.report_submit":
        return error_response(429, "too_many_requests", exc.description, headers=headers)
    wait = int(headers["Retry-After"])
    when = f"{wait} seconds" if wait < 90 else f"{math.ceil(wait / 60)} minutes"
    conn = db.connection()
    refusal = Pin311Error("You have sent several reports in a short time, so this one has not been sent yet. "
                          f"Please wait about {when} and press “Send the report” again — "
                          "what you typed is still here (choose the photo again if you added one).")
    page, _ = _form_page(conn, _chosen(conn, request.form.get("service_code", "")), request.form, refusal)
    return page, 429, headers


@bp.errorhandler(413)
def too_large(exc):
    if request.endpoint != "public.report_submit":
        return error_response(413, "request_entity_too_large", exc.description)
    # The body was refused before it was read, so nothing typed reached us (request.form would raise
    # again): say what happened and what to do.
    refusal = Pin311Error(f"The photo was too large to send (the limit is {media.MAX_BYTES // (1024 * 1024)} MB), "
                          "so your report did not arrive. Go back to your report (your browser usually keeps "
                          "what you typed), choose a smaller photo or none, and send it again.", field="photo")
    return _form_page(db.connection(), None, MultiDict(), refusal, 413)


@bp.get("/photos/<name>.jpg")
def photo(name):
    if not service.photo_is_public(db.connection(), name):
        abort(404)
    full, _ = media.paths(current_app.config["MEDIA_DIR"], name)
    if not full.exists():
        abort(404)
    return send_file(full, mimetype="image/jpeg", max_age=3600)
