"""Migration 0020: the data-version bump becomes PL/pgSQL (plan kept per session), with the same effect.

What the bump does is tested where it matters (test_tiles: once per committed change, never on a rollback);
here: the migration goes up and down alone, and a bump after each moves the version by exactly one."""
from sqlalchemy import create_engine, pool, text

from app import schema
from tests.test_bulk_migration import _down_to
from tests.test_platform import scratch_db  # noqa: F401

LANGUAGE = text("SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
                "WHERE p.proname = 'pin311_bump_version'")
VERSION = text("SELECT coalesce(sum(version), 0) FROM data_versions WHERE name = 'requests'")


def _bumps_by_one(c):
    before = c.scalar(VERSION)
    c.execute(text("SELECT pin311_bump_version('requests')"))
    return c.scalar(VERSION) == before + 1


def test_0020_up_and_down_alone(scratch_db):  # noqa: F811
    schema.upgrade(scratch_db)
    eng = create_engine(scratch_db, poolclass=pool.NullPool)
    try:
        with eng.begin() as c:
            assert c.scalar(LANGUAGE) == "plpgsql"
            assert _bumps_by_one(c)
        _down_to(scratch_db, "0019")
        with eng.begin() as c:
            assert c.scalar(LANGUAGE) == "sql"
            assert _bumps_by_one(c)
        schema.upgrade(scratch_db)
        with eng.begin() as c:
            assert c.scalar(LANGUAGE) == "plpgsql"
    finally:
        eng.dispose()
