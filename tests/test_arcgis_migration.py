"""Migration 0006 (arcgis_items) goes up and down on its own, and matches gis/models.py."""
from sqlalchemy import create_engine, inspect, pool, text

from app import schema
from gis.models import ArcGISItem
from tests.test_platform import scratch_db  # noqa: F401


def _has(url, name):
    eng = create_engine(url, poolclass=pool.NullPool)
    with eng.connect() as c:
        found = c.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name})
        cols = {c["name"] for c in inspect(c).get_columns(name)} if found else set()
    eng.dispose()
    return found, cols


def test_0006_up_and_down_alone(scratch_db):
    schema.upgrade(scratch_db)
    found, cols = _has(scratch_db, "arcgis_items")
    assert found and cols == {c.name for c in ArcGISItem.__table__.columns}
    schema.downgrade(scratch_db, "0006@-1")       # this branch only
    assert _has(scratch_db, "arcgis_items") == (False, set())
    assert _has(scratch_db, "public_requests")[0]   # the other heads stay
    schema.upgrade(scratch_db)
    assert _has(scratch_db, "arcgis_items")[0]
