"""The hot statements run PREPAREd (gis/prepared.py): same answers, index-driven generic plans, and a
session that lost its prepared statements or a changed result type never shows up as an error."""
from sqlalchemy import text

from gis import apikeys, prepared
from gis.intake import _INSERT_STMT
from gis.locate import locate_point

SOUTH_BOSTON = (42.3345, -71.0398)
BODY = {"service_code": "animal-generic", "lat": SOUTH_BOSTON[0], "lon": SOUTH_BOSTON[1],
        "attributes": {"animal_type": "dog"}, "description": "prepared"}


def _one_connection_app(db_url):
    """An app whose pool holds one connection, so that every request runs in the same session."""
    from app import create_app
    return create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": "p" * 32,
                       "RATELIMIT_ENABLED": False, "DB_POOL_SIZE": 1})


def test_intake_prepares_once_per_session_and_keeps_an_index_driven_generic_plan(db_url, api_key):
    app = _one_connection_app(db_url)
    client = app.test_client()
    for _ in range(7):       # PostgreSQL settles on a generic plan after five custom ones
        r = client.post("/api/v1/requests", json=BODY, headers={"X-Api-Key": api_key})
        assert r.status_code == 201, r.get_data(as_text=True)[:300]
    with app.extensions["pin311.engine"].connect() as c:
        generic = dict(c.execute(text("SELECT name, generic_plans FROM pg_prepared_statements")).all())
        params = {name: None for name in _INSERT_STMT.params}
        params.update(lat=SOUTH_BOSTON[0], lon=SOUTH_BOSTON[1])
        explain = c.exec_driver_sql("EXPLAIN (COSTS OFF) " + _INSERT_STMT.execute_sql, params)
        plan = "\n".join(explain.scalars())
        c.rollback()
    assert generic["pin311_intake"] > 0 and "pin311_apikey" in generic, generic
    assert "$1" in plan, "not the generic plan"
    assert "district_parts_geom_gist" in plan and "parcels_geom_gist" in plan, plan


def test_a_session_that_lost_its_prepared_statements_prepares_again(db_url, api_key):
    app = _one_connection_app(db_url)
    client = app.test_client()
    for _ in range(2):   # the first may run inside the catalogue read's transaction, unprepared
        assert client.post("/api/v1/requests", json=BODY, headers={"X-Api-Key": api_key}).status_code == 201
    engine = app.extensions["pin311.engine"]
    with engine.connect() as c:   # what a pooler or DISCARD ALL would do behind the pool's back
        assert {"pin311_intake", "pin311_apikey"} <= c.connection.info["pin311.prepared"]
        c.exec_driver_sql("DEALLOCATE ALL")
        c.commit()
    apikeys.forget_checked()      # so that the key is checked in the database again
    r = client.post("/api/v1/requests", json=BODY, headers={"X-Api-Key": api_key})
    assert r.status_code == 201, r.get_data(as_text=True)[:300]
    with engine.connect() as c:
        names = set(c.exec_driver_sql("SELECT name FROM pg_prepared_statements").scalars())
    assert {"pin311_intake", "pin311_apikey"} <= names


def test_a_changed_result_type_is_prepared_again(engine):
    stmt = prepared.Statement("pin311_test_retype", "SELECT v FROM prepared_probe WHERE v = :v",
                              {"v": "int4"})
    with engine.connect() as c:
        c.exec_driver_sql("CREATE TEMP TABLE prepared_probe (v int4)")
        c.exec_driver_sql("INSERT INTO prepared_probe VALUES (7)")
        c.commit()
        assert stmt.run(c, {"v": 7}).scalar() == 7
        c.exec_driver_sql("ALTER TABLE prepared_probe ALTER v TYPE int8")   # the plan's result type changes
        c.commit()
        assert stmt.run(c, {"v": 7}).scalar() == 7
        c.exec_driver_sql("DROP TABLE prepared_probe")
        c.commit()


def test_inside_an_open_transaction_the_statement_is_part_of_it(engine):
    stmt = prepared.Statement("pin311_test_insert", "INSERT INTO prepared_probe2 VALUES (:v) RETURNING v",
                              {"v": "int4"})
    with engine.connect() as c:
        c.exec_driver_sql("CREATE TEMP TABLE prepared_probe2 (v int4)")
        c.commit()
        c.exec_driver_sql("SELECT 1")                     # the caller's transaction is open
        assert stmt.run(c, {"v": 1}).scalar() == 1
        c.rollback()
        assert c.exec_driver_sql("SELECT count(*) FROM prepared_probe2").scalar() == 0
        c.rollback()
        assert stmt.run(c, {"v": 2}).scalar() == 2        # nothing open: its own transaction, committed
        c.rollback()
        assert c.exec_driver_sql("SELECT count(*) FROM prepared_probe2").scalar() == 1
        c.exec_driver_sql("DROP TABLE prepared_probe2")
        c.commit()


def test_locate_prepared_matches_the_plain_statement(conn):
    from gis.locate import LOCATE_SQL
    for lat, lon in (SOUTH_BOSTON, (42.3601, -71.0589), (42.2529, -71.1233), (41.0, -70.0)):
        plain = conn.execute(LOCATE_SQL, {"lat": lat, "lon": lon}).one()
        conn.rollback()
        where = locate_point(conn, lat, lon)
        assert (where.inside, where.districts) == (plain.inside, plain.districts or {})
        assert where.parcel_id == (plain.parcel or {}).get("parcel_id")


def test_errors_on_the_driver_path_are_sqlalchemys(db_url, api_key):
    # The prepared statement runs on psycopg2's cursor; a value PostgreSQL refuses must still reach
    # the app's handlers as SQLAlchemy's DataError (400), and leave the connection usable.
    app = _one_connection_app(db_url)
    client = app.test_client()
    for address_id in ("abc", 10 ** 30):
        r = client.post("/api/v1/requests", json={**BODY, "address_id": address_id},
                        headers={"X-Api-Key": api_key})
        assert r.status_code == 400, r.get_data(as_text=True)[:300]
        assert r.get_json()["error"] == "invalid_input"
    assert client.post("/api/v1/requests", json=BODY, headers={"X-Api-Key": api_key}).status_code == 201
