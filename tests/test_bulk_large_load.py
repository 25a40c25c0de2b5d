"""Large loads (gis.bulk_indexes): the import sets the tables' secondary indexes and foreign keys aside and
makes them again inside its one transaction. Afterwards the same definitions are there (rebuilt), the
foreign keys hold; a failure at any point leaves the tables as they were; busy tables fall back to a load
with live indexes; the loaded rows are the same as the live path's, chunk after chunk."""
import gzip
import json

import pytest
from sqlalchemy import create_engine, exc, pool, text

from gis import bulk, bulk_indexes
from gis.errors import InvalidInput
from gis.locate import locate_point
from tests.test_cli_batch import run

TABLES = "('service_requests'::regclass, 'request_events'::regclass)"


def _schema(conn):
    """Index and constraint definitions of the loaded tables (and constraints referencing them), by name."""
    indexes = conn.execute(text("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename IN "
                                "('service_requests', 'request_events') ORDER BY 1, 2")).all()
    constraints = conn.execute(text(f"""
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
         WHERE conrelid IN {TABLES} OR confrelid IN {TABLES} ORDER BY 1, 2""")).all()
    return indexes, constraints


def _secondary_oids(conn):
    """Every index of the loaded tables (keys' too), by name: a rebuilt one has a new oid."""
    return dict(conn.execute(text(f"""
        SELECT indexrelid::regclass::text, indexrelid FROM pg_index WHERE indrelid IN {TABLES}""")).all())


def _file(conn, path, prefix, n):
    """n Open311 records at gazetteer addresses (inside the city), every third one closed."""
    points = conn.execute(text("SELECT ST_Y(geom), ST_X(geom) FROM address_points ORDER BY id LIMIT :n"),
                          {"n": n}).all()
    records = [{"service_request_id": f"{prefix}-{i:03d}", "service_code": "abandoned-vehicle",
                "status": "closed" if i % 3 == 0 else "open", "status_notes": "Case resolved",
                "requested_datetime": "2019-03-01T10:00:00-05:00", "updated_datetime": "2019-03-04T10:00:00-05:00",
                "lat": lat, "long": lon, "address": f"{i} Test St"} for i, (lat, lon) in enumerate(points)]
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in records))
    return path


def _loaded(conn, prefix):
    return conn.scalar(text("SELECT count(*) FROM service_requests WHERE public_id LIKE :p"), {"p": prefix + "-%"})


def test_large_load_makes_the_same_indexes_and_constraints_again(engine, conn, tmp_path, monkeypatch):
    monkeypatch.setattr(bulk, "CHUNK", 7)        # several chunks through the loader thread
    path = _file(conn, tmp_path / "large.jsonl.gz", "LL", 40)
    before, oids = _schema(conn), _secondary_oids(conn)
    conn.commit()                                # nothing of ours holds a lock on the tables
    report = bulk.import_requests(engine, path, "open311-json", progress=False, rebuild_indexes="yes")
    assert report.rebuilt_indexes and report.loaded == 40
    assert "large load" in report.summary()
    assert _schema(conn) == before                               # the same names and definitions
    rebuilt = _secondary_oids(conn)
    assert set(rebuilt) == set(oids) and all(rebuilt[k] != oids[k] for k in oids)   # … made again
    rows = conn.execute(text("SELECT id, public_id, status, districts, parcel_id, ST_Y(geom) AS lat, "
                             "ST_X(geom) AS lon FROM service_requests WHERE public_id LIKE 'LL-%' ORDER BY public_id"
                             )).all()
    assert [r.public_id for r in rows] == [f"LL-{i:03d}" for i in range(40)]
    for r in rows:                               # every chunk located as the one-point SQL path does
        where = locate_point(conn, r.lat, r.lon)
        assert {k: d["code"] for k, d in where.districts.items()} == {k: d["code"] for k, d in r.districts.items()}
        assert where.parcel_id == r.parcel_id
    events = conn.execute(text("SELECT e.kind, count(*) FROM request_events e JOIN service_requests r "
                               "ON r.id = e.request_id WHERE r.public_id LIKE 'LL-%' GROUP BY e.kind")).all()
    assert dict(events) == {"created": 40, "closed": 14}
    conn.commit()
    # Without the unique index there is no ON CONFLICT: rows already present are left out beforehand.
    more = _file(conn, tmp_path / "more.jsonl.gz", "LL", 45)              # the same 40, and 5 new
    conn.commit()
    again = bulk.import_requests(engine, more, "open311-json", progress=False, rebuild_indexes="yes")
    assert again.rebuilt_indexes and (again.loaded, again.already_present) == (5, 40)
    assert _loaded(conn, "LL") == 45 and _schema(conn) == before
    oids = _secondary_oids(conn)
    conn.commit()
    rerun = bulk.import_requests(engine, more, "open311-json", progress=False, rebuild_indexes="yes")
    assert (rerun.loaded, rerun.already_present) == (0, 45)
    assert not rerun.rebuilt_indexes and _secondary_oids(conn) == oids      # nothing new: nothing rebuilt
    conn.commit()
    # The foreign keys were added back checked, and hold for new writes.
    with pytest.raises(exc.IntegrityError, match="request_events_request_id_fkey"):
        with engine.begin() as c:
            c.execute(text("INSERT INTO request_events (request_id, kind, actor) VALUES (-1, 'note', 'test')"))
    with pytest.raises(exc.IntegrityError, match="service_requests_crew_id_fkey"):
        with engine.begin() as c:
            c.execute(text("UPDATE service_requests SET crew_id = -1 WHERE public_id = 'LL-001'"))


def _failing(monkeypatch, name, module, after_calls=0):
    """Make module.name raise on its (after_calls + 1)-th call, recording what the tables held then."""
    real, seen = getattr(module, name), {"calls": 0}

    def fail(*args, **kw):
        seen["calls"] += 1
        if seen["calls"] > after_calls:
            if name == "restore":
                seen["secondary"] = _secondary_oids(args[0])
            raise RuntimeError("the load fails here")
        return real(*args, **kw)
    monkeypatch.setattr(module, name, fail)
    return seen


@pytest.mark.parametrize("where", ["while loading chunks", "after the load, before the rebuild"])
def test_a_failed_large_load_leaves_the_tables_as_they_were(engine, conn, tmp_path, monkeypatch, where):
    monkeypatch.setattr(bulk, "CHUNK", 5)
    path = _file(conn, tmp_path / "fails.jsonl.gz", "LF", 30)
    before, oids = _schema(conn), _secondary_oids(conn)
    conn.commit()
    if where == "while loading chunks":
        seen = _failing(monkeypatch, "_staged_csv", bulk, after_calls=3)   # chunks 1-3 are in the table by then
    else:
        seen = _failing(monkeypatch, "restore", bulk_indexes)
    with pytest.raises(RuntimeError, match="the load fails here"):
        bulk.import_requests(engine, path, "open311-json", progress=False, rebuild_indexes="yes")
    if "secondary" in seen:                      # the indexes were really gone during the load …
        assert not set(seen["secondary"]) & set(oids)
    assert _schema(conn) == before and _secondary_oids(conn) == oids   # … and are back, untouched
    assert _loaded(conn, "LF") == 0
    conn.commit()
    monkeypatch.undo()
    report = bulk.import_requests(engine, path, "open311-json", progress=False, rebuild_indexes="yes")
    assert report.loaded == 30 and _schema(conn) == before


def test_auto_rule_and_busy_tables(engine, db_url, conn, tmp_path, monkeypatch):
    rule = bulk_indexes.wants_rebuild
    assert rule("auto", 10_000, 0) and rule("auto", 10_000, 10_000)
    assert not rule("auto", 9_999, 0) and not rule("auto", 10_000, 10_001)
    assert rule("yes", 1, 10**7) and not rule("no", 10**7, 0)
    with pytest.raises(InvalidInput):
        bulk.import_requests(engine, tmp_path / "none.jsonl", "open311-json", rebuild_indexes="maybe")
    path = _file(conn, tmp_path / "busy.jsonl.gz", "LB", 12)
    oids = _secondary_oids(conn)
    conn.commit()
    monkeypatch.setattr(bulk_indexes, "LARGE_LOAD_MIN_ROWS", 10)
    monkeypatch.setattr(bulk_indexes, "rows_present", lambda conn: 0)     # 'auto' wants the rebuild
    other = create_engine(db_url, poolclass=pool.NullPool)
    with other.connect() as reader:              # a session in a transaction that has read the table
        reader.execute(text("SELECT count(*) FROM service_requests"))
        with pytest.raises(InvalidInput, match="could not lock"):
            bulk.import_requests(engine, path, "open311-json", progress=False, rebuild_indexes="yes")
        report = bulk.import_requests(engine, path, "open311-json", progress=False)
        reader.rollback()
    other.dispose()
    assert report.loaded == 12 and report.tables_busy and not report.rebuilt_indexes
    assert "loaded with live indexes" in report.summary()
    assert _secondary_oids(conn) == oids


def test_cli_rebuild_indexes_option(db_url, conn, tmp_path):
    path = _file(conn, tmp_path / "cli.jsonl.gz", "LC", 5)
    conn.commit()
    done = run(db_url, "requests", "import", str(path), "--rebuild-indexes", "yes", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "loaded 5" in done.stdout and "large load" in done.stdout
    assert _loaded(conn, "LC") == 5
    done = run(db_url, "requests", "import", "--help")
    assert "--rebuild-indexes [auto|yes|no]" in done.stdout


def test_lock_keeps_the_sessions_lock_timeout(engine):
    """'auto' waits only AUTO_LOCK_WAIT for the lock; the rest of the load keeps the session's own timeout."""
    with engine.begin() as c:
        c.execute(text("SET LOCAL lock_timeout = '4321ms'"))
        assert bulk_indexes.lock(c, required=False)
        assert c.scalar(text("SELECT current_setting('lock_timeout')")) == "4321ms"


def test_a_key_a_view_depends_on_stays_live(engine, conn, tmp_path):
    """A view grouping by the primary key depends on it (PostgreSQL refuses to drop it): a large load keeps
    that key live and sets the rest aside."""
    path = _file(conn, tmp_path / "view.jsonl.gz", "LV", 6)
    conn.commit()
    with engine.begin() as c:
        c.execute(text("CREATE VIEW bulk_test_view AS SELECT r.id, r.status, count(e.id) AS events "
                       "FROM service_requests r LEFT JOIN request_events e ON e.request_id = r.id GROUP BY r.id"))
    try:
        oids = _secondary_oids(conn)
        conn.commit()
        report = bulk.import_requests(engine, path, "open311-json", progress=False, rebuild_indexes="yes")
        assert report.rebuilt_indexes and report.loaded == 6
        after = _secondary_oids(conn)
        assert after["service_requests_pkey"] == oids["service_requests_pkey"]            # kept live
        assert after["service_requests_public_id_key"] != oids["service_requests_public_id_key"]   # rebuilt
        assert conn.scalar(text("SELECT events FROM bulk_test_view v JOIN service_requests r USING (id) "
                                "WHERE r.public_id = 'LV-000'")) == 2
    finally:
        conn.rollback()
        with engine.begin() as c:
            c.execute(text("DROP VIEW bulk_test_view"))
