"""The pool's check before use (gis/db.py): a session the server ended while its connection sat in the
pool is replaced before a request uses it, with or without the SELECT 1 round trip."""
import pytest
from sqlalchemy import create_engine, pool, text

from app import create_app
from gis import db


@pytest.fixture
def one_connection_app(db_url):
    # A pool of one connection (every request reuses it); its own engine, so the test may break it.
    db.engine_for.cache_clear()
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": "c" * 32,
                      "RATELIMIT_ENABLED": False, "DB_POOL_SIZE": 1})
    yield app
    app.extensions["pin311.engine"].dispose()
    db.engine_for.cache_clear()


def _backend_pid(app):
    with app.extensions["pin311.engine"].connect() as c:
        return c.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def _terminate(db_url, pid):
    killer = create_engine(db_url, poolclass=pool.NullPool)
    with killer.connect() as c:
        assert c.execute(text("SELECT pg_terminate_backend(:p, 2000)"), {"p": pid}).scalar()
    killer.dispose()


@pytest.mark.parametrize("idle_seconds", [db.PING_IDLE_SECONDS, -1])   # socket check only; and with SELECT 1
def test_a_session_ended_by_the_server_is_replaced_before_use(one_connection_app, db_url, api_key,
                                                              monkeypatch, idle_seconds):
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", idle_seconds)
    client = one_connection_app.test_client()
    headers = {"X-Api-Key": api_key}
    assert client.get("/api/v1/services", headers=headers).status_code == 200
    first = _backend_pid(one_connection_app)
    _terminate(db_url, first)
    r = client.get("/api/v1/services", headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert _backend_pid(one_connection_app) != first


def test_the_round_trip_ping_leaves_the_connection_as_it_was(one_connection_app, api_key, monkeypatch):
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", -1)
    client = one_connection_app.test_client()
    for _ in range(3):
        assert client.get("/api/v1/services", headers={"X-Api-Key": api_key}).status_code == 200
    with one_connection_app.extensions["pin311.engine"].connect() as c:
        assert c.connection.dbapi_connection.autocommit is False
        c.exec_driver_sql("SELECT 1")
        assert c.in_transaction()
