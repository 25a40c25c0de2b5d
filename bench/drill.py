"""Fault drill: sustained mixed load on gunicorn while an app worker, PostgreSQL and the outbox worker die.

    .venv/bin/python bench/drill.py [--seconds 70] [--clients 8] [--workers 3]

Everything runs on loopback against a throwaway PostgreSQL cluster of its own (initdb in /var/tmp, own
Unix socket), cloned from the dev database's schema and reference data, so restarting PostgreSQL never
disturbs anyone else. A second process (bench/drill_load.py) plays the clients: each logical request has its
own idempotency key and is retried as a real client would (connection errors, timeouts, 5xx, 429; with
back-off, up to a deadline). Meanwhile the main process SIGKILLs a gunicorn worker, restarts PostgreSQL
with a fast shutdown, and SIGKILLs `pin311 worker` (when it exists) while it has work.

At the end it reconciles against the database (bench/drill_checks.py): every acknowledged request exists
exactly once, with its `created` event and its outbox rows; no request without its event; no two rows for
one logical request; the outbox drained after the worker came back. It prints the figures and exits 1 on
any loss, duplicate or half-written request, or when the service did not recover within RECOVERY_LIMIT
seconds.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.cli.serve import gunicorn_argv  # noqa: E402  (the form `pin311 serve` runs: a socket per worker)
from bench.drill_checks import MailSink, report, wait_drained  # noqa: E402
from bench.common import children, free_port  # noqa: E402
from bench.drill_cluster import Cluster, has_worker_command, start_worker, wait_ready  # noqa: E402
from bench.drill_load import SERVICES  # noqa: E402


def prepare(cluster):
    """The scratch cluster holding a clone of the dev database, an API key for the clients and 500 address
    points for them to report at (in points.json); returns (url, engine, key)."""
    from sqlalchemy import create_engine, pool, text

    from app import schema
    from app.config import database_url
    from gis import apikeys
    cluster.init()
    cluster.clone_from(database_url())
    url = cluster.url()
    schema.upgrade(url)  # the dev database may be behind the checkout's migrations
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as c:
        _, key = apikeys.create(c, "drill", ("open311:write", "api:read", "api:write"))
        found = {r[0] for r in c.execute(text("SELECT code FROM services WHERE code = ANY(:c) AND active"),
                                         {"c": list(SERVICES)})}
        missing = set(SERVICES) - found
        if missing:
            raise SystemExit(f"drill: services missing from the clone: {sorted(missing)}")
        points = [list(r) for r in c.execute(text(
            "SELECT ST_Y(geom), ST_X(geom) FROM address_points ORDER BY random() LIMIT 500"))]
    Path(cluster.base / "points.json").write_text(json.dumps(points))
    return url, engine, key


def start_app(cluster, url, key, workers, mail, procs, logs):
    """gunicorn on a free loopback port (and `pin311 worker`, when it exists) against the clone, mail to the
    sink, into `procs`; returns (base URL, environment, worker log, features the clients can use)."""
    import requests
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "drill-" + uuid.uuid4().hex,
           "PIN311_MEDIA_DIR": str(cluster.base / "media"), "PIN311_SMTP_HOST": "127.0.0.1",
           "PIN311_SMTP_PORT": str(mail.port), "PIN311_MAIL_FROM": "311@drill.test"}
    for name in ("PIN311_TWILIO_ACCOUNT_SID", "PIN311_ARCGIS_URL"):  # nothing leaves loopback
        env.pop(name, None)
    procs["gunicorn"] = subprocess.Popen(
        gunicorn_argv("127.0.0.1", port, workers, 4, access_log=False),
        cwd=ROOT, env=env, stdout=open(logs / "gunicorn.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True)
    if not wait_ready(base, key):
        raise SystemExit(f"drill: gunicorn did not come up; see {logs / 'gunicorn.log'}")
    features = []
    if requests.get(f"{base}/open311/v2/services.json", timeout=5).status_code == 200:
        features.append("open311")
    if requests.get(f"{base}/tiles/layers.json", timeout=5).status_code == 200:
        features.append("tiles")
    worker_log = open(logs / "worker.log", "w")
    if has_worker_command():
        procs["worker"] = start_worker(env, worker_log)
        features.append("worker")
    return base, env, worker_log, features


def inject_faults(seconds, cluster, engine, procs, env, worker_log):
    """While the clients run: at 20 % of the run SIGKILL a gunicorn worker, at 45 % restart PostgreSQL with
    a fast shutdown, at 70 % SIGKILL the outbox worker while it has work and start it again.
    Returns [(fault, when it struck)]."""
    from sqlalchemy import text
    start = time.time()
    faults = []

    def at(offset):
        time.sleep(max(0.0, start + offset - time.time()))

    at(seconds * 0.2)
    victims = children(procs["gunicorn"].pid)
    if victims:
        os.kill(victims[0], signal.SIGKILL)
        faults.append(("app worker SIGKILL", time.time()))
        print(f"drill: t={time.time() - start:4.1f}s SIGKILL gunicorn worker {victims[0]}", flush=True)
    at(seconds * 0.45)
    faults.append(("PostgreSQL fast restart", time.time()))
    print(f"drill: t={time.time() - start:4.1f}s PostgreSQL restart (fast)", flush=True)
    cluster.restart_fast()
    print(f"drill: t={time.time() - start:4.1f}s PostgreSQL back", flush=True)
    at(seconds * 0.7)
    if "worker" in procs:
        with engine.connect() as c:  # kill it while it has work in hand
            for _ in range(50):
                if c.scalar(text("SELECT count(*) FROM outbox WHERE done_at IS NULL AND topic = 'notify'")):
                    break
                time.sleep(0.1)
        procs["worker"].send_signal(signal.SIGKILL)
        procs["worker"].wait()
        faults.append(("outbox worker SIGKILL", time.time()))
        print(f"drill: t={time.time() - start:4.1f}s SIGKILL outbox worker; restarting it", flush=True)
        time.sleep(1)
        procs["worker"] = start_worker(env, worker_log)
    return faults


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=70)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the scratch cluster (prints its URL)")
    a = p.parse_args(argv)

    t0 = time.time()
    cluster = Cluster()
    procs = {}
    mail = None
    logs = cluster.base / "logs"
    logs.mkdir()
    try:
        print(f"drill: scratch cluster in {cluster.base}", flush=True)
        url, engine, key = prepare(cluster)
        print(f"drill: clone ready in {time.time() - t0:.1f}s", flush=True)
        mail = MailSink()
        base, env, worker_log, features = start_app(cluster, url, key, a.workers, mail, procs, logs)
        print(f"drill: gunicorn ({a.workers} workers) on {base}; features: {', '.join(features) or 'none'}",
              flush=True)

        out = cluster.base / "load.json"
        load = subprocess.Popen([sys.executable, str(ROOT / "bench" / "drill_load.py"), "--base", base,
                                 "--key", key, "--seconds", str(a.seconds), "--clients", str(a.clients),
                                 "--points", str(cluster.base / "points.json"), "--out", str(out),
                                 "--features", ",".join(features)], cwd=ROOT)
        faults = inject_faults(a.seconds, cluster, engine, procs, env, worker_log)
        load.wait()
        if load.returncode != 0:
            raise SystemExit("drill: the load process failed")
        result = json.loads(out.read_text())
        drained = None
        if "worker" in procs:
            drained = wait_drained(engine)
        ok = report(engine, result, faults, drained, time.time() - t0, mail if drained is not None else None)
        return 0 if ok else 1
    finally:
        if mail:
            mail.stop()
        for proc in procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(proc.pid, signal.SIGKILL)
        if a.keep:
            print(f"drill: scratch cluster kept: {cluster.url()}")
        else:
            cluster.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
