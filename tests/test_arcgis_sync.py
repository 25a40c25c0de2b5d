"""Incremental ArcGIS sync from the outbox: killed workers, outages, throttling and token expiry.

The real `arcgis` client talks to the stand-in portal (tests/standin_portal.py); the proof is always
that the hosted layer then holds exactly the database's public view (no loss, no duplicates).
"""
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from gis import arcgis_sync, lifecycle
from gis.intake import NewRequest, submit_request
from tests.arcgis_fixtures import (  # noqa: F401
    arcgis_env, assert_layer_is_public_view, hosted_requests, portal, published)
from tests.standin_portal import PASSWORD, USER

PIN311 = str(Path(sys.executable).parent / "pin311")
OPEN = text("""SELECT r.id FROM service_requests r JOIN services s ON s.code = r.service_code
                WHERE r.status = 'open' AND s.public ORDER BY r.id LIMIT :n OFFSET :skip""")


def _pending(conn):
    return conn.execute(text("SELECT count(*) FROM outbox WHERE topic = 'publish' AND done_at IS NULL")).scalar()


def _change(engine, n, skip=0, with_new=0):
    """Acknowledge/start/close n open requests (and submit with_new new ones, with a caller); their ids."""
    with engine.connect() as conn:
        ids = [r.id for r in conn.execute(OPEN, {"n": n, "skip": skip})]
        actions = ("acknowledge", "start", "close")
        for i, rid in enumerate(ids):
            action = actions[i % 3]
            lifecycle.apply(conn, rid, action, "test-agent", reason="fixed" if action == "close" else None)
        point = conn.execute(text("SELECT ST_Y(geom), ST_X(geom) FROM service_requests WHERE id = :i"),
                             {"i": ids[0]}).one()
        for k in range(with_new):
            code, attributes = (("needle-pickup", {"location_type": "park"}) if k % 2
                                else ("dead-animal", {"animal_size": "large"}))
            submit_request(conn, NewRequest(
                service_code=code, lat=point[0], lon=point[1], description=f"private words {k}",
                attributes=attributes,
                contact={"first_name": "Zelda", "last_name": f"Quibbleworth{k}", "phone": "617-555-0199",
                         "email": f"zelda{k}@example.org"}))
    return ids


def test_worker_killed_mid_batch_then_restarted_leaves_exactly_the_public_view(engine, portal, published):
    _change(engine, 100, with_new=4)
    with engine.connect() as conn:
        assert _pending(conn) >= 104
    edits = []

    def kill_on_second_batch(path):
        if path.endswith("/applyEdits"):
            edits.append(path)
            if len(edits) == 2:   # the portal has applied batch 2; the worker never hears of it
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait(timeout=30)

    env = {**os.environ, "PIN311_ARCGIS_BATCH": "20"}
    portal.before_answer = kill_on_second_batch
    worker = subprocess.Popen([PIN311, "worker", "--interval", "0.2"], env=env,   # the real `pin311 worker`
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        worker.wait(timeout=180)
    finally:
        if worker.poll() is None:
            worker.kill()
    portal.before_answer = None
    assert worker.returncode == -signal.SIGKILL, worker.stderr.read()[-2000:]
    with engine.connect() as conn:
        left = _pending(conn)
        assert 0 < left <= 104 - 20, "batch 2 must still be pending: the worker died before marking it"
    held, _ = hosted_requests(portal)

    restarted = subprocess.run([PIN311, "worker", "--once"], env=env, capture_output=True, text=True, timeout=180)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert "publishing to ArcGIS" in restarted.stdout
    with engine.connect() as conn:
        assert _pending(conn) == 0
        assert_layer_is_public_view(conn, portal)
    blob = str([f["attributes"] for f in hosted_requests(portal)[0].values()])
    for private in ("Zelda", "Quibbleworth", "617-555-0199", "example.org", "private words"):
        assert private not in blob


def test_a_30_minute_outage_backs_off_loses_nothing_and_drains(engine, portal, published):
    _change(engine, 30, skip=200)
    with engine.connect() as conn:
        t0 = conn.execute(text("SELECT now()")).scalar()
    portal.down = "500"
    calls_before = len(portal.calls)
    attempts = 0
    for minute in range(0, 31):          # the worker polls every simulated minute for half an hour
        if minute == 15:
            portal.down = "drop"         # the second half: connections dropped without an answer
        result = arcgis_sync.run_once(engine, now=t0 + timedelta(minutes=minute))
        assert result["sent"] == 0
        attempts += "error" in result
    with engine.connect() as conn:
        st = arcgis_sync.status(conn)
        assert st["backlog"] == 30 and st["failing"] == 30
        assert st["last_error"] and st["lag_seconds"] >= 0
    assert 4 <= attempts <= 8, f"back-off: {attempts} tries in 30 minutes"   # 15 s doubling, capped at 10 min
    assert len(portal.calls) > calls_before
    portal.down = None
    later = t0 + timedelta(minutes=45)
    assert arcgis_sync.drain(engine, now=later) == 30
    with engine.connect() as conn:
        assert _pending(conn) == 0
        assert_layer_is_public_view(conn, portal)


def test_throttling_429_with_retry_after_is_waited_out(engine, portal, published):
    _change(engine, 10, skip=300)
    portal.fail(3, status=429, retry_after=0)       # the client's own retries absorb a short burst
    assert arcgis_sync.run_once(engine)["sent"] == 10
    _change(engine, 10, skip=320)
    portal.fail(40, status=429, retry_after=0)      # a long one outlasts them: our back-off takes over
    first = arcgis_sync.run_once(engine)
    assert first["sent"] == 0 and first["rows"] == 10
    portal._faults.clear()
    with engine.connect() as conn:
        later = conn.execute(text("SELECT now() + interval '1 minute'")).scalar()
    assert arcgis_sync.drain(engine, now=later) == 10
    with engine.connect() as conn:
        assert_layer_is_public_view(conn, portal)


def test_token_expiry_signs_in_again(engine, portal, published, arcgis_env):
    arcgis_env.delenv("PIN311_ARCGIS_API_KEY")
    arcgis_env.setenv("PIN311_ARCGIS_USERNAME", USER)
    arcgis_env.setenv("PIN311_ARCGIS_PASSWORD", PASSWORD)
    arcgis_sync.forget_session()
    _change(engine, 5, skip=400)
    assert arcgis_sync.run_once(engine)["sent"] == 5
    portal.expire_tokens()
    _change(engine, 5, skip=420)
    assert arcgis_sync.run_once(engine)["sent"] == 5     # 498 → signed in again within the same batch
    token_calls = [c for c in portal.calls if c[1].endswith("/generateToken")]
    assert len(token_calls) >= 2
    with engine.connect() as conn:
        assert_layer_is_public_view(conn, portal)


def test_a_request_leaving_the_public_view_is_deleted_from_the_layer(engine, portal, published):
    with engine.connect() as conn:
        rid, pid = conn.execute(text("""SELECT r.id, r.public_id FROM service_requests r JOIN services s
            ON s.code = r.service_code WHERE s.public AND r.status = 'open' ORDER BY r.id DESC LIMIT 1""")).one()
        hidden = conn.execute(text("SELECT code FROM services WHERE NOT public LIMIT 1")).scalar()
    assert pid in hosted_requests(portal)[0]
    with engine.connect() as conn:
        lifecycle.apply(conn, rid, "reassign", "test-supervisor", service_code=hidden)
    assert arcgis_sync.drain(engine) >= 1
    assert pid not in hosted_requests(portal)[0]
    with engine.connect() as conn:
        assert_layer_is_public_view(conn, portal)
        conn.execute(text("UPDATE service_requests SET service_code = (SELECT code FROM services WHERE public "
                          "ORDER BY code LIMIT 1) WHERE id = :i"), {"i": rid})
        conn.commit()


def test_status_command_shows_backlog_and_lag(engine, portal, published):
    from app.cli import main
    _change(engine, 3, skip=500)
    portal.down = "500"
    arcgis_sync.run_once(engine)
    out = CliRunner().invoke(main, ["arcgis", "status"])
    assert out.exit_code == 0, out.output
    assert "backlog: 3 changes (3 retried)" in out.output
    assert "lag:" in out.output and "last error:" in out.output
    assert "requests: 311 requests" in out.output
    portal.down = None


def test_two_workers_at_once_send_each_change_once(engine, portal, published):
    _change(engine, 40, skip=600)
    results = []
    threads = [threading.Thread(target=lambda: results.append(arcgis_sync.drain(engine))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    with engine.connect() as conn:
        assert _pending(conn) == 0
        assert_layer_is_public_view(conn, portal)
