"""Area sweeps routes: draw an area or pick districts → preview open requests → create → progress."""
from flask import current_app, jsonify, render_template, request, url_for
from flask_login import current_user

from app.auth import roles_required
from app.dashboards import bp
from app.extensions import db
from gis import analytics, sweeps
from gis.errors import InvalidInput, Pin311Error

SWEEPERS = ("analyst", "supervisor")


def _error(exc):
    return jsonify({"error": {"code": exc.code, "message": exc.message, "field": exc.field}}), exc.status


def _area(conn, body):
    return sweeps.area_sql(conn, polygon=body.get("area"), layer=body.get("layer"), codes=body.get("districts"))


def _body():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("send a JSON object", field="body")
    return body


@bp.get("/sweeps")
@roles_required(*SWEEPERS)
def sweeps_page():
    conn = db.connection()
    crews, districts = sweeps.crews(conn), analytics.districts(conn)
    settings = {"basemap": current_app.config.get("BASEMAP_URL") or None}
    return render_template("dashboards/sweeps.html", crews=crews, districts=districts, settings=settings,
                           sweeps=sweeps.all_sweeps(conn))


@bp.post("/sweeps/preview")
@roles_required(*SWEEPERS)
def sweep_preview():
    conn = db.connection()
    try:
        area = _area(conn, _body())
        found = sweeps.preview(conn, area)
    except Pin311Error as exc:
        return _error(exc)
    found["area"] = area
    return jsonify(found)


@bp.post("/sweeps")
@roles_required(*SWEEPERS)
def sweep_create():
    conn = db.connection()
    try:
        body = _body()
        area = _area(conn, body)
        sweep_id = sweeps.create(conn, body.get("name"), area, body.get("crew"), body.get("target_date"),
                                 f"{current_user.role}:{current_user.username}", body.get("categories"))
    except Pin311Error as exc:
        return _error(exc)
    result = sweeps.progress(conn, sweep_id)
    return jsonify({"id": sweep_id, "url": url_for("dashboards.sweep_view", sweep_id=sweep_id),
                    "taken": result["taken"]}), 201


@bp.get("/sweeps/<int:sweep_id>")
@roles_required(*SWEEPERS)
def sweep_view(sweep_id):
    conn = db.connection()
    try:
        result = sweeps.progress(conn, sweep_id)
    except Pin311Error as exc:
        if request.args.get("format") == "json":
            return _error(exc)
        raise
    if request.args.get("format") == "json":
        return jsonify(result)
    return render_template("dashboards/sweep.html", sweep=result,
                           settings={"basemap": current_app.config.get("BASEMAP_URL") or None,
                                     "area": result["area"],
                                     "points": [[r["lon"], r["lat"], r["status"]] for r in result["requests"]]})
