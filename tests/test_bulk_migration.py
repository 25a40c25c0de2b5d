"""Migration 0011 (bulk loads skip the per-row triggers they replace) goes up and down on its own branch."""
from sqlalchemy import create_engine, pool, text

from app import schema
from tests.test_platform import scratch_db  # noqa: F401


def _triggers(url):
    eng = create_engine(url, poolclass=pool.NullPool)
    with eng.connect() as c:
        rows = c.execute(text("SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                              "WHERE tgrelid = 'service_requests'::regclass AND NOT tgisinternal")).all()
    eng.dispose()
    return dict(rows)


def _heads(url):
    eng = create_engine(url, poolclass=pool.NullPool)
    with eng.connect() as c:
        heads = set(c.scalars(text("SELECT version_num FROM alembic_version")))
    eng.dispose()
    return heads


def test_0011_up_and_down_alone(scratch_db):
    from alembic.script import ScriptDirectory
    schema.upgrade(scratch_db)
    # every head of the scripts is a row of alembic_version (what /healthz checks)
    assert _heads(scratch_db) == set(ScriptDirectory.from_config(schema.alembic_config("")).get_heads())
    schema.downgrade(scratch_db, "0015@-3")       # 0013-0015 sit on 0011: down to it (their downgrades run)
    assert "0011" in _heads(scratch_db) and "0003" not in _heads(scratch_db)
    up = _triggers(scratch_db)
    assert "pin311.bulk" in up["service_requests_public_point"]
    assert "public_geom IS NULL" in up["service_requests_public_point"]
    assert "pin311.bulk" not in up["service_requests_public_point_update"]
    assert "pin311.bulk" in up["service_requests_data_version"]
    assert "pin311.bulk" not in up["service_requests_data_version_change"]
    assert "pin311.bulk" in up["service_requests_notify"]
    schema.downgrade(scratch_db, "0011@-1")       # this branch only
    assert "0003" in _heads(scratch_db) and "0011" not in _heads(scratch_db)
    down = _triggers(scratch_db)
    assert "service_requests_public_point_update" not in down
    assert "service_requests_data_version_change" not in down
    assert not any("pin311.bulk" in d for d in down.values())
    assert "INSERT OR UPDATE OF geom, service_code" in down["service_requests_public_point"]
    assert "INSERT OR DELETE OR UPDATE" in down["service_requests_data_version"]
    schema.upgrade(scratch_db)
    assert _triggers(scratch_db) == up
    assert "0015" in _heads(scratch_db)


def test_0003_cannot_go_down_under_0011(scratch_db):
    """0011 narrows 0003's triggers and sits on its branch: taking 0003 down takes 0011 down first."""
    schema.upgrade(scratch_db)
    schema.downgrade(scratch_db, "0015@-5")      # the whole branch: 0015 down to 0011, then 0003
    assert not {"0003", "0011", "0013", "0014", "0015"} & _heads(scratch_db)
    assert set(_triggers(scratch_db)) == {"service_requests_notify"}
    assert "pin311.bulk" not in _triggers(scratch_db)["service_requests_notify"]
    schema.upgrade(scratch_db)
    assert "service_requests_public_point_update" in _triggers(scratch_db)
