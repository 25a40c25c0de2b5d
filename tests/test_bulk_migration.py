"""Migration 0011 (bulk loads skip the per-row triggers they replace) goes up and down on its own branch."""
from alembic.script import ScriptDirectory
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


def _down_to(url, rev):
    """Downgrade the branch holding `rev` until `rev` is its head: the migrations stacked on it, however many."""
    script = ScriptDirectory.from_config(schema.alembic_config(""))
    head = next(h for h in script.get_heads() if rev in {r.revision for r in script.iterate_revisions(h, "base")})
    above = list(script.iterate_revisions(head, rev))
    if above:
        schema.downgrade(url, f"{head}@-{len(above)}")


def test_0011_up_and_down_alone(scratch_db):
    schema.upgrade(scratch_db)
    # every head of the scripts is a row of alembic_version (what /healthz checks)
    assert _heads(scratch_db) == set(ScriptDirectory.from_config(schema.alembic_config("")).get_heads())
    _down_to(scratch_db, "0011")       # 0013 and later sit on 0011: down to it (their downgrades run)
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
    head = _triggers(scratch_db)
    # 0016 dropped the notify trigger, 0018 the public-point ones (public_geom became a generated column)
    gone = {"service_requests_notify", "service_requests_public_point", "service_requests_public_point_update"}
    assert {k: v for k, v in head.items() if k in up} == {k: v for k, v in up.items() if k not in gone}
    assert {"service_requests_sensitivity", "service_requests_sensitivity_change"} <= set(head)
    assert _heads(scratch_db) == set(ScriptDirectory.from_config(schema.alembic_config("")).get_heads())


def test_0003_cannot_go_down_under_0011(scratch_db):
    """0011 narrows 0003's triggers and sits on its branch: taking 0003 down takes 0011 down first."""
    schema.upgrade(scratch_db)
    _down_to(scratch_db, "0003")
    schema.downgrade(scratch_db, "0003@-1")      # the whole branch: everything on 0011, 0011, then 0003
    assert not {"0003", "0011", "0013", "0014", "0015", "0016"} & _heads(scratch_db)
    assert set(_triggers(scratch_db)) == {"service_requests_notify"}
    assert "pin311.bulk" not in _triggers(scratch_db)["service_requests_notify"]
    schema.upgrade(scratch_db)
    assert "service_requests_sensitivity" in _triggers(scratch_db)


def test_0016_spreads_the_versions_over_slots_and_back_keeping_their_sum(scratch_db):
    from gis.public import data_version
    schema.upgrade(scratch_db)
    eng = create_engine(scratch_db, poolclass=pool.NullPool)
    with eng.begin() as c:
        for _ in range(20):
            c.execute(text("SELECT pin311_bump_version('requests')"))
        before = data_version(c, "requests")
        assert c.scalar(text("SELECT count(*) FROM data_versions WHERE name = 'requests'")) > 1
    _down_to(scratch_db, "0015")
    with eng.connect() as c:
        assert c.execute(text("SELECT version FROM data_versions WHERE name = 'requests'")).scalars().all() == [before]
        assert set(_triggers(scratch_db)) >= {"service_requests_notify"}
    schema.upgrade(scratch_db)
    with eng.connect() as c:
        assert data_version(c, "requests") == before
        assert "service_requests_notify" not in _triggers(scratch_db)
    eng.dispose()


def test_0018_public_points_stay_the_same_up_and_down(scratch_db):
    schema.upgrade(scratch_db)
    eng = create_engine(scratch_db, poolclass=pool.NullPool)
    points = text("SELECT public_id, ST_AsEWKT(public_geom) FROM service_requests ORDER BY public_id")
    with eng.begin() as c:
        c.execute(text("INSERT INTO services (code, name, sensitive) VALUES ('m-open', 'Open', false), "
                       "('m-hidden', 'Hidden', true)"))
        c.execute(text("""INSERT INTO service_requests (service_code, geom, channel)
                          SELECT code, ST_SetSRID(ST_MakePoint(-71.0398, 42.3345), 4326), 'api'
                            FROM services WHERE code LIKE 'm-%'"""))
        up = c.execute(points).all()
    assert len({p for _, p in up}) == 2                     # the sensitive one is snapped
    _down_to(scratch_db, "0017")
    with eng.begin() as c:
        assert c.execute(points).all() == up
        assert "service_requests_public_point" in _triggers(scratch_db)
        c.execute(text("UPDATE services SET sensitive = NOT sensitive WHERE code LIKE 'm-%'"))   # 0003's trigger
        swapped = c.execute(points).all()
    assert [p for _, p in swapped] == [p for _, p in reversed(up)]
    schema.upgrade(scratch_db)
    with eng.connect() as c:
        assert c.execute(points).all() == swapped
    eng.dispose()
