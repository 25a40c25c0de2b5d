"""Thin routes for the analyst dashboard: parse → app/dashboards/service.py (→ gis.analytics) → render."""
import json
from datetime import timedelta
from urllib.parse import urlencode

from flask import Response, current_app, render_template, request, url_for

from app.auth import roles_required
from app.dashboards import bp, service
from app.extensions import db
from gis import analytics
from gis.errors import Pin311Error

ANALYSTS = ("analyst", "supervisor")


@bp.get("/")
@roles_required(*ANALYSTS)
def index():
    conn = db.connection()
    error, summary, shown, chosen = None, {}, None, None
    try:
        f, interval, layer, cell = service.options(conn, request.args)
        analytics.check_layer(conn, layer, "layer")
        summary = {"districts": analytics.by_district(conn, f, layer),
                   "top": analytics.top_categories(conn, f, "neighborhoods"),
                   "crews": analytics.crew_workload(conn, f)[:20]}
        shown = (f.start, f.end - timedelta(days=1) if f.end else None)
        chosen = (f.district_layer, f.district)   # the district as its layer spells it ("a-1" -> A1)
    except Pin311Error as exc:
        error = exc.message
    qs = urlencode({k: v for k, v in request.args.items() if v})
    # One link per named period, keeping the other filters (the dates are the period's, in the city).
    kept = {k: v for k, v in request.args.items() if v and k not in ("start", "end", "period")}
    periods = [(key, label, urlencode({**kept, "period": key})) for key, label in analytics.PERIODS.items()]
    settings = {"basemap": current_app.config.get("BASEMAP_URL") or None, "query": qs,
                "layer": request.args.get("layer") or "wards"}
    return render_template("dashboards/index.html", error=error, summary=summary, qs=qs, args=request.args,
                           periods=periods, shown=shown,
                           layers=analytics.district_layers(conn), categories=analytics.categories(conn),
                           districts=analytics.districts(conn), chosen=chosen,
                           settings=settings, datasets=service.DATASETS, timezone=current_app.config["TIMEZONE"])


def _answer(build, mimetype, download=None):
    """What `build()` makes, as `mimetype` (an attachment named `download` when given); a Pin311Error it
    raises is its message as plain text with its status: an analyst's bad filter is a 400, not a page."""
    try:
        body = build()
    except Pin311Error as exc:
        return Response(exc.message + "\n", status=exc.status, mimetype="text/plain")
    headers = {"Content-Disposition": f'attachment; filename="{download}"'} if download else {}
    return Response(body, mimetype=mimetype, headers=headers)


@bp.get("/chart/<name>.svg")
@roles_required(*ANALYSTS)
def chart(name):
    return _answer(lambda: service.chart(db.connection(), name, request.args), "image/svg+xml")


@bp.get("/data/<name>.csv")
@roles_required(*ANALYSTS)
def data_csv(name):
    return _answer(lambda: service.to_csv(service.dataset(db.connection(), name, request.args)), "text/csv",
                   f"{name}.csv")


@bp.get("/data/<name>.geojson")
@roles_required(*ANALYSTS)
def data_geojson(name):
    return _answer(lambda: json.dumps(service.geojson(db.connection(), name, request.args), default=str),
                   "application/geo+json", f"{name}.geojson")


@bp.get("/map/<name>.html")
@roles_required(*ANALYSTS)
def map_html(name):
    """The map as a folium HTML file to keep or share (a download: it is not shown under our CSP)."""
    static_base = request.host_url.rstrip("/") + url_for("static", filename="").rstrip("/")
    return _answer(lambda: service.folium_map(db.connection(), name, request.args, static_base), "text/html",
                   f"{name}.html")
