"""A real PostgreSQL stop and start (a throwaway cluster of this test's own, never the shared one):
503 + Retry-After within seconds while it is down, and the same app serves again by itself once it is back."""
import time

import pytest
from sqlalchemy import create_engine, pool

from app import create_app, schema
from gis import apikeys


@pytest.fixture(scope="module")
def cluster():
    from bench.drill_cluster import Cluster
    c = Cluster()
    try:
        c.init()
        c._run("createdb", *c.libpq("postgres")[:4], "drill")
        yield c
    finally:
        c.stop()


def _until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_stop_and_start_postgresql_under_a_running_app(cluster):
    url = cluster.url()
    schema.upgrade(url)
    eng = create_engine(url, poolclass=pool.NullPool)
    with eng.begin() as c:
        _, key = apikeys.create(c, "restart test", ("api:read",))
    eng.dispose()
    app = create_app({"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": "s" * 32, "RATELIMIT_ENABLED": False})
    client = app.test_client()
    headers = {"X-Api-Key": key}
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/services", headers=headers).status_code == 200  # the pool now holds a connection

    cluster._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(cluster.data))
    for path in ("/healthz", "/api/v1/services"):
        started = time.monotonic()
        r = client.get(path, headers=headers)
        assert time.monotonic() - started < 4, f"{path} hung while the database was down"
        assert r.status_code == 503 and r.headers["Retry-After"].isdigit(), r.get_data(as_text=True)[:200]

    down_at = time.monotonic()
    cluster.start()
    back = _until(lambda: client.get("/api/v1/services", headers=headers).status_code == 200, 10)
    assert back, "the app did not recover by itself after PostgreSQL came back"
    assert time.monotonic() - down_at < 15
    assert client.get("/healthz").status_code == 200
