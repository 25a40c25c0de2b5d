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
        # Several migration heads (one branch per feature): one row each in alembic_version.
        row = db.connection().execute(text(
            "SELECT array_agg(version_num ORDER BY version_num), postgis_lib_version() FROM alembic_version")).one()
    except Exception:  # noqa: BLE001 - a health check reports, it does not raise
        return database_unavailable()
    missing = sorted(set(_expected_heads()) - set(row[0] or ()))
    if missing:
        return jsonify(status="schema_behind", schema=row[0], missing=missing,
                       message="run `pin311 db upgrade`"), 503, {"Retry-After": "30"}
    return jsonify(status="ok", schema=",".join(row[0]), postgis=row[1])


_HEADS = []


def _expected_heads():
    """The migration heads this checkout ships (read once)."""
    if not _HEADS:
        from alembic.script import ScriptDirectory
        from app.schema import alembic_config
        _HEADS.extend(ScriptDirectory.from_config(alembic_config("")).get_heads())
    return _HEADS
