"""Migration 0009 (sweeps, sweep_requests) goes up and down on its own branch, and matches gis/models.py."""
from sqlalchemy import create_engine, inspect, pool, text

from app import schema
from gis.models import Sweep, SweepRequest
from tests.test_platform import scratch_db  # noqa: F401


def _has(url, name):
    eng = create_engine(url, poolclass=pool.NullPool)
    with eng.connect() as c:
        found = c.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name})
        cols = {c["name"] for c in inspect(c).get_columns(name)} if found else set()
    eng.dispose()
    return found, cols


def test_0009_up_and_down_alone(scratch_db):
    schema.upgrade(scratch_db)
    for model in (Sweep, SweepRequest):
        found, cols = _has(scratch_db, model.__tablename__)
        assert found and cols == {c.name for c in model.__table__.columns}
    schema.downgrade(scratch_db, "0009@-1")       # this branch only
    assert _has(scratch_db, "sweeps") == (False, set()) and not _has(scratch_db, "sweep_requests")[0]
    assert _has(scratch_db, "public_requests")[0]   # the other heads stay
    schema.upgrade(scratch_db)
    assert _has(scratch_db, "sweeps")[0] and _has(scratch_db, "sweep_requests")[0]
