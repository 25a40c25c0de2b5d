"""`pin311 db backup` / `pin311 db restore` round-trip on scratch databases, through the real CLI."""
import os
import subprocess
import uuid

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from gis import intake
from tests.conftest import ROOT, _admin_url, _exec_autocommit

PIN311 = str(ROOT / ".venv" / "bin" / "pin311")
# A fingerprint of what matters: row counts and an order-independent hash of each table's rows.
TABLES = ("service_requests", "request_events", "contacts", "outbox", "users", "api_keys", "districts",
          "address_points", "services", "crews", "routing_rules", "contact_audit")


def _cli(url, *args, input=None):
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([PIN311, "db", *args], env=env, capture_output=True, text=True, input=input,
                          timeout=300)


def _fingerprint(url):
    eng = create_engine(url, poolclass=pool.NullPool)
    try:
        with eng.connect() as c:
            return {t: c.execute(text(f"SELECT count(*), coalesce(sum(hashtext(x::text)::bigint), 0) "
                                      f"FROM {t} x")).one() for t in TABLES}
    finally:
        eng.dispose()


@pytest.fixture
def scratch(db_url):
    admin = _admin_url().render_as_string(hide_password=False)
    name = f"pin311_restore_{uuid.uuid4().hex[:8]}"
    _exec_autocommit(admin, f'CREATE DATABASE "{name}"')
    yield make_url(db_url).set(database=name).render_as_string(hide_password=False)
    _exec_autocommit(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_backup_restore_round_trip(db_url, engine, scratch, tmp_path):
    with engine.connect() as c:  # something of today's to lose: a ticket with its contact and outbox rows
        t = intake.submit_request(c, intake.NewRequest(
            service_code="pothole", lat=42.3505, lon=-71.0620, description="backup test",
            contact={"first_name": "Backup", "phone": "6175550199"}, idempotency_key=str(uuid.uuid4())))
        c.commit()
    dump = tmp_path / "pin311.dump"
    made = _cli(db_url, "backup", str(dump))
    assert made.returncode == 0, made.stderr
    assert dump.stat().st_size > 100_000 and dump.read_bytes()[:5] == b"PGDMP"  # pg_dump custom format
    before = _fingerprint(db_url)

    restored = _cli(scratch, "restore", "--yes", str(dump))
    assert restored.returncode == 0, restored.stderr
    assert _fingerprint(scratch) == before

    # Restoring over a database that has since changed puts it back exactly.
    eng = create_engine(scratch, poolclass=pool.NullPool)
    with eng.begin() as c:
        c.execute(text("DELETE FROM service_requests WHERE public_id = :p"), {"p": t["public_id"]})
        c.execute(text("UPDATE services SET name = 'changed' WHERE code = 'pothole'"))
    eng.dispose()
    assert _fingerprint(scratch) != before
    again = _cli(scratch, "restore", "--yes", str(dump))
    assert again.returncode == 0, again.stderr
    assert _fingerprint(scratch) == before
    eng = create_engine(scratch, poolclass=pool.NullPool)
    with eng.connect() as c:
        assert c.scalar(text("SELECT count(*) FROM contacts k JOIN service_requests r ON r.id = k.request_id "
                             "WHERE r.public_id = :p AND k.first_name = 'Backup'"), {"p": t["public_id"]}) == 1
    eng.dispose()


def test_restore_refuses_a_missing_or_broken_file_and_changes_nothing(scratch, db_url, tmp_path):
    seeded = _cli(scratch, "upgrade")
    assert seeded.returncode == 0, seeded.stderr
    before = _fingerprint(scratch)
    missing = _cli(scratch, "restore", "--yes", str(tmp_path / "nope.dump"))
    assert missing.returncode != 0 and "no such backup file" in (missing.stderr + missing.stdout)
    broken = tmp_path / "broken.dump"
    good = tmp_path / "good.dump"
    assert _cli(db_url, "backup", str(good)).returncode == 0
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated mid-way
    failed = _cli(scratch, "restore", "--yes", str(broken))
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr and "pg_restore failed" in (failed.stderr + failed.stdout)
    assert _fingerprint(scratch) == before  # --single-transaction: all or nothing


def test_restore_asks_before_replacing(scratch, tmp_path):
    r = _cli(scratch, "restore", str(tmp_path / "x.dump"), input="n\n")
    assert r.returncode != 0 and "Aborted" in (r.stdout + r.stderr)
