"""Shared by the benchmarks: a scratch database with the demo city, sample points, percentiles.

Every benchmark runs against its own throw-away database (created from the migrations and the demo
city, dropped at the end), so the figures do not depend on what a developer's database holds and a
benchmark never writes into it.
"""
import contextlib
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, pool, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402


def percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def free_port():
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    """The pids of a process's children (a gunicorn master's workers); [] when it is gone."""
    try:
        out = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(p) for p in out]
    except OSError:
        return []


def serve(url, port, threads, **popen):
    """gunicorn serving the app on `url`'s database at 127.0.0.1:`port` as `pin311 serve` runs it (its command
    line and settings, app/cli/serve.py), without the access log; threads=1 runs sync workers. Returns the
    process once the port accepts connections."""
    from app.cli.serve import WORKERS, gunicorn_argv, server_settings
    env = {**server_settings(threads), **os.environ, "DATABASE_URL": url, "SECRET_KEY": secrets.token_hex(24)}
    argv = gunicorn_argv("127.0.0.1", port, WORKERS, threads, access_log=False)
    if threads == 1:
        argv[argv.index("gthread")] = "sync"
    server = subprocess.Popen([*argv[:-1], "--log-level", "warning", argv[-1]], cwd=ROOT, env=env, **popen)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return server


def _admin(url):
    return create_engine(make_url(url).set(database="postgres"), poolclass=pool.NullPool,
                         isolation_level="AUTOCOMMIT")


@contextlib.contextmanager
def scratch_db(with_requests=True):
    """Yield the URL of a fresh database holding the demo city; drop it afterwards.

    BENCH_DATABASE_URL reuses an existing one instead (bench/run.py builds one for all benchmarks).
    """
    given = os.environ.get("BENCH_DATABASE_URL")
    if given:
        yield given
        return
    from app import localdb, schema
    from app.config import database_url, uses_local_cluster
    from gis import demo
    if uses_local_cluster():
        localdb.start()
    base = database_url()
    name = f"pin311_bench_{os.getpid()}"
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    admin = _admin(base)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        schema.upgrade(url)
        engine = create_engine(url, poolclass=pool.NullPool)
        for _ in demo.load(engine, with_requests=with_requests, progress=False):
            pass
        with engine.connect() as c:
            c.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        engine.dispose()
        yield url
    finally:
        from gis.db import engine_for
        engine_for.cache_clear()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def sample_points(conn, n, seed=311):
    """Points a few metres around gazetteer addresses (where people drop pins), all inside the city."""
    rows = conn.execute(text("SELECT ST_Y(geom), ST_X(geom) FROM address_points ORDER BY md5(id::text) LIMIT :n"),
                        {"n": n}).all()
    rng = random.Random(seed)
    return [(lat + rng.uniform(-1e-4, 1e-4), lon + rng.uniform(-1e-4, 1e-4)) for lat, lon in rows]


def machine():
    import datetime
    import platform
    mem = ""
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    load = os.getloadavg()
    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, nproc {os.cpu_count()}, "
            f"memory {mem}, load average {load[0]:.2f} (other work on the machine shows here), "
            f"Python {platform.python_version()}")
