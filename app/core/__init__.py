"""Home page and health check."""
from flask import Blueprint, jsonify, render_template
from sqlalchemy import text

from app.errors import database_unavailable
from app.extensions import db

bp = Blueprint("core", __name__)


@bp.get("/")
def home():
    return render_template("home.html")


@bp.get("/healthz")
def healthz():
    """200 when the database answers and the schema is in place, 503 otherwise."""
    try:
        row = db.connection().execute(text(
            "SELECT version_num, postgis_lib_version() FROM alembic_version")).one()
    except Exception:  # noqa: BLE001 - a health check reports, it does not raise
        return database_unavailable()
    return jsonify(status="ok", schema=row[0], postgis=row[1])
