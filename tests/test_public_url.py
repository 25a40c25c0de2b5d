"""PIN311_PUBLIC_URL, the public site's address, has one reader (gis.site): the web app's stored photo links
and the worker's e-mails see the same address, and a malformed one stops both instead of going out."""
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from app.config import Config, ConfigError
from gis import notify, site
from tests.notify_fixtures import _drain, _mail_texts, _texts, _ticket, outside_world  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
ROW = SimpleNamespace(public_id="1000123", service_name="Pothole", crew_name=None, public_note=None,
                      status="open", closure_reason=None, merged_into=None)
MALFORMED = ("311.example.gov", "https://311.example.gov/path", "javascript:alert(1)", "https://311.example.gov/#top",
             "https://311.example.gov/?utm=1", "ftp://311.example.gov")


def _mail(env):
    return notify.message("created", ROW, "email", env)


def test_only_gis_site_reads_the_setting():
    readers = [str(p.relative_to(ROOT)) for folder in ("app", "gis") for p in sorted((ROOT / folder).rglob("*.py"))
               if re.search(r"""["']PIN311_PUBLIC_URL["']""", p.read_text())]
    assert readers == ["gis/site.py"]


@pytest.mark.parametrize("value, address", [("https://311.example.org", "https://311.example.org"),
                                            (" https://311.example.org/ ", "https://311.example.org"),
                                            ("http://localhost:5000", "http://localhost:5000"),
                                            ("", ""), (None, "")])
def test_the_web_app_and_the_worker_see_the_same_address(monkeypatch, value, address):
    if value is None:
        monkeypatch.delenv("PIN311_PUBLIC_URL", raising=False)
    else:
        monkeypatch.setenv("PIN311_PUBLIC_URL", value)
    assert Config().PUBLIC_URL == site.public_url() == address
    assert _mail(os.environ).endswith(f"Its status: {address}/requests/1000123" if address else "(Pothole).")


@pytest.mark.parametrize("value", MALFORMED)
def test_a_malformed_address_is_refused_by_both_in_the_same_words(monkeypatch, value):
    monkeypatch.setenv("PIN311_PUBLIC_URL", value)
    why = f"PIN311_PUBLIC_URL must be the site's address such as https://311.example.gov, got {value!r}"
    with pytest.raises(ConfigError) as web:
        Config()
    with pytest.raises(ValueError) as worker:
        _mail({"PIN311_PUBLIC_URL": value})
    assert str(web.value) == str(worker.value) == why
    assert notify.message("created", ROW, "sms", {"PIN311_PUBLIC_URL": value}).endswith("STOP to stop texts.")


def test_the_worker_holds_emails_back_while_the_address_is_malformed(conn, engine, outside_world,  # noqa: F811
                                                                     monkeypatch):
    _, mailbox = outside_world
    monkeypatch.setenv("PIN311_PUBLIC_URL", "311.example.org")      # no scheme: a link no mail reader follows
    ticket = _ticket(conn, phone="+16175550611", email="held@example.org")
    _drain(engine)
    assert len(_texts("+16175550611", "received")) == 1              # texts carry no link: they go
    assert _mail_texts(mailbox, "held@example.org") == []
    error = conn.scalar(text("SELECT last_error FROM outbox WHERE topic = 'notify' AND done_at IS NULL "
                             "AND (payload ->> 'request_id')::bigint = :r"), {"r": ticket["id"]})
    conn.commit()
    assert "PIN311_PUBLIC_URL must be the site's address" in error
    monkeypatch.setenv("PIN311_PUBLIC_URL", "https://311.example.org")
    conn.execute(text("UPDATE outbox SET next_try = now() WHERE topic = 'notify' AND done_at IS NULL"))
    conn.commit()
    _drain(engine)
    assert _mail_texts(mailbox, "held@example.org") == [
        f"Boston 311: we received your request {ticket['public_id']} (Animal Generic Request). "
        f"Its status: https://311.example.org/requests/{ticket['public_id']}"]
    assert len(_texts("+16175550611", "received")) == 1


def test_the_worker_refuses_to_start_with_a_malformed_address(db_url):
    import subprocess
    from tests.test_platform import PIN311
    run = subprocess.run([PIN311, "worker", "--once"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DATABASE_URL": db_url, "PIN311_PUBLIC_URL": "311.example.gov"})
    assert run.returncode != 0
    assert "PIN311_PUBLIC_URL must be the site's address" in run.stderr and "Traceback" not in run.stderr
