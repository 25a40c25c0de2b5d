"""Staff sessions live server-side (gis/sessions.py, migration 0017): a copied cookie stops working when its
session is ended — by signing out, by an administrator, by a new password or by deactivation — and
reactivating an account revives none of its old sessions. Idle and over-age sessions are refused; the
session table is written at most once a minute per session and never on an API-key request."""
import base64
import json
import os
import re
import subprocess
import uuid
import zlib
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, event, inspect, pool, text

from app import schema
from app.auth import users
from app.config import Config, ConfigError
from gis.apikeys import digest
from gis.models import StaffSession
from tests.conftest import STAFF_PASSWORD, browser_login, login
from tests.test_bulk_migration import _down_to
from tests.test_platform import scratch_db  # noqa: F401

COOKIE = "session"


@pytest.fixture
def account(engine):
    """A throwaway agent (its sessions go with it: ON DELETE CASCADE)."""
    name = f"test-sessions-{uuid.uuid4().hex[:8]}"
    with engine.begin() as c:
        users.create(c, name, STAFF_PASSWORD, "agent", "Session Tester")
    yield name
    with engine.begin() as c:
        c.execute(text("DELETE FROM users WHERE username = :u"), {"u": name})


def _user_id(engine, username):
    with engine.connect() as c:
        return c.scalar(text("SELECT id FROM users WHERE username = :u"), {"u": username})


def _signed_in(app, username, address="127.0.0.1", agent="pytest"):
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR=address, HTTP_USER_AGENT=agent)
    assert login(client, username).status_code == 302
    return client


def _copy(app, client):
    """Another browser holding a copy of `client`'s session cookie (a kiosk's, a proxy log's)."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    return thief


def _in(client, page="/agent/"):
    r = client.get(page)
    if r.status_code == 200:
        return True
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/login", r.status_code
    return False


def _logout(client):
    page = client.get("/agent/").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return client.post("/logout", data={"csrf_token": token})


def _sessions(engine, username):
    with engine.connect() as c:
        return c.execute(text("SELECT s.* FROM staff_sessions s JOIN users u ON u.id = s.user_id "
                              "WHERE u.username = :u ORDER BY s.id"), {"u": username}).all()


def _cookie_payload(client):
    """What the signed (not encrypted) cookie says: anyone holding it can read this."""
    raw = client.get_cookie(COOKIE).value
    compressed = raw.startswith(".")
    data = raw.lstrip(".").split(".")[0]
    data = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return json.loads(zlib.decompress(data) if compressed else data)


def test_the_cookie_carries_only_a_random_token_whose_hash_is_kept(app, engine, account):
    client = _signed_in(app, account)
    token = _cookie_payload(client)["_user_id"]
    assert len(token) >= 40 and ":" not in token           # not the old "id:stamp"
    [row] = _sessions(engine, account)
    assert row.token_hash == digest(token) and row.revoked_at is None
    with engine.connect() as c:      # the token itself is nowhere in the table
        assert not c.scalar(text("SELECT count(*) FROM staff_sessions WHERE token_hash = :t"), {"t": token})


def test_a_copied_cookie_is_refused_after_sign_out(app, engine, account):
    client = _signed_in(app, account)
    thief = _copy(app, client)
    assert _in(thief) and thief.get("/api/v1/services").status_code == 200
    assert _logout(client).status_code == 302
    assert not _in(client) and not _in(thief)
    anonymous = app.test_client().get("/api/v1/services").status_code
    assert anonymous in (401, 403) and thief.get("/api/v1/services").status_code == anonymous
    [row] = _sessions(engine, account)
    assert row.revoked_reason == "signed out"


def test_signing_in_again_on_a_browser_ends_its_previous_session(app, engine, account):
    client = _signed_in(app, account)
    thief = _copy(app, client)
    assert login(client, account).status_code == 302
    assert _in(client) and not _in(thief)
    first, second = _sessions(engine, account)
    assert first.revoked_reason == "replaced by a new sign-in" and second.revoked_at is None


def test_deactivation_ends_every_session_and_reactivation_revives_none(app, engine, account):
    desk, phone = _signed_in(app, account), _signed_in(app, account)
    copies = [_copy(app, desk), _copy(app, phone)]
    user_id = _user_id(engine, account)
    with engine.begin() as c:
        assert users.set_active(c, user_id, False)
    with engine.begin() as c:
        assert users.set_active(c, user_id, True)
    assert not any(_in(c) for c in (desk, phone, *copies))
    assert {r.revoked_reason for r in _sessions(engine, account)} == {"account deactivated"}
    assert _in(_signed_in(app, account))        # the person may sign in afresh


def test_deactivation_by_hand_in_sql_ends_the_sessions_too(app, engine, account):
    client = _signed_in(app, account)
    with engine.begin() as c:       # what an administrator at a psql prompt does: the trigger sees it
        c.execute(text("UPDATE users SET active = false WHERE username = :u"), {"u": account})
        c.execute(text("UPDATE users SET active = true WHERE username = :u"), {"u": account})
    assert not _in(client)


def test_a_new_password_ends_the_sessions_through_the_table(app, engine, account):
    client = _signed_in(app, account)
    with engine.begin() as c:       # what `pin311 users create` does for an existing name
        users.create(c, account, "a-brand-new-password", "agent")
    assert not _in(client)
    assert [r.revoked_reason for r in _sessions(engine, account)] == ["password changed"]
    with engine.begin() as c:       # anything else about the account leaves its sessions alone
        c.execute(text("UPDATE users SET full_name = 'Renamed' WHERE username = :u"), {"u": account})
    assert login(client, account, "a-brand-new-password").status_code == 302 and _in(client)


def _age(engine, username, column, minutes):
    with engine.begin() as c:
        c.execute(text(f"UPDATE staff_sessions SET {column} = now() - make_interval(mins => :m) "
                       "WHERE user_id = (SELECT id FROM users WHERE username = :u)"), {"m": minutes, "u": username})


def test_an_idle_session_is_refused(app, engine, account, monkeypatch):
    assert app.config["SESSION_IDLE_MINUTES"] == 12 * 60           # the default: a call-centre shift
    client = _signed_in(app, account)
    _age(engine, account, "last_seen_at", 12 * 60 - 1)
    assert _in(client)
    monkeypatch.setitem(app.config, "SESSION_IDLE_MINUTES", 30)
    _age(engine, account, "last_seen_at", 29)
    assert _in(client)                                              # and that request counts as use
    _age(engine, account, "last_seen_at", 31)
    assert not _in(client)


def test_a_session_older_than_the_limit_is_refused_however_busy(app, engine, account):
    client = _signed_in(app, account)
    _age(engine, account, "created_at", app.config["SESSION_MAX_HOURS"] * 60 - 1)
    assert _in(client)
    _age(engine, account, "created_at", app.config["SESSION_MAX_HOURS"] * 60 + 1)
    assert not _in(client)


@pytest.mark.parametrize("name", ["PIN311_SESSION_IDLE_MINUTES", "PIN311_SESSION_MAX_HOURS"])
def test_session_limits_must_be_positive_whole_numbers(monkeypatch, name):
    for raw in ("0", "-5", "twelve"):
        monkeypatch.setenv(name, raw)
        with pytest.raises(ConfigError, match=name):
            Config()
    monkeypatch.setenv(name, "90")
    assert getattr(Config(), name.removeprefix("PIN311_")) == 90


@contextmanager
def _statements(app):
    """Every SQL statement the app sends while the block runs."""
    seen, engine = [], app.extensions["pin311.engine"]

    def grab(conn, cursor, statement, *args):
        seen.append(statement)
    event.listen(engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", grab)


def _writes(seen):
    return [s for s in seen if re.search(r"UPDATE staff_sessions SET last_seen_at", s)]


def test_last_seen_is_written_at_most_once_a_minute(app, engine, account):
    client = _signed_in(app, account)
    with _statements(app) as seen:
        for _ in range(5):
            assert _in(client)
    assert _writes(seen) == []                  # used within the minute: read, never written
    _age(engine, account, "last_seen_at", 2)
    with _statements(app) as seen:
        for _ in range(5):
            assert _in(client)
    assert len(_writes(seen)) == 1
    [row] = _sessions(engine, account)
    with engine.connect() as c:
        assert c.scalar(text("SELECT now() - :t < interval '10 seconds'"), {"t": row.last_seen_at})


def test_api_key_requests_never_touch_the_session_table(app, api_key):
    body = {"service_code": "animal-generic", "lat": 42.3345, "lon": -71.0398, "attributes": {"animal_type": "dog"},
            "description": "Stray dog by the school"}
    with _statements(app) as seen:
        client = app.test_client()
        assert client.get("/api/v1/services", headers={"X-Api-Key": api_key}).status_code == 200
        assert client.post("/api/v1/requests", json=body, headers={"X-Api-Key": api_key}).status_code == 201
    assert seen and not [s for s in seen if "staff_sessions" in s]


def _admin_form_token(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _admin_post(admin, path, user_id):
    token = _admin_form_token(admin.get(f"/admin/users/{user_id}").get_data(as_text=True))
    return admin.post(path, data={"csrf_token": token})


def test_the_admin_page_lists_sessions_and_ends_one(app, engine, staff, account):
    kiosk = _signed_in(app, account, "203.0.113.5", "Kiosk/1.0 (front desk)")
    laptop = _signed_in(app, account, "2001:db8::7", "Laptop/2.0")
    admin = _signed_in(app, staff["admin"])
    user_id = _user_id(engine, account)
    listing = admin.get("/admin/users/").get_data(as_text=True)
    row = re.search(rf'{account}</a>.*?</tr>', listing, re.S).group(0)
    assert "2 sessions" in row
    page = admin.get(f"/admin/users/{user_id}").get_data(as_text=True)
    for shown in ("203.0.113.5", "Kiosk/1.0 (front desk)", "2001:db8::7", "Laptop/2.0"):
        assert shown in page
    kiosk_session = next(r.id for r in _sessions(engine, account) if r.user_agent.startswith("Kiosk"))
    r = _admin_post(admin, f"/admin/users/{user_id}/sessions/{kiosk_session}/end", user_id)
    assert r.status_code == 302
    page = admin.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert "Session ended." in page and "Laptop/2.0" in page and "Kiosk/1.0" not in page
    assert not _in(kiosk) and _in(laptop) and _in(admin, "/admin/users/")


def test_admin_signs_a_user_out_everywhere(app, engine, staff, account):
    clients = [_signed_in(app, account) for _ in range(3)]
    admin = _signed_in(app, staff["admin"])
    user_id = _user_id(engine, account)
    r = _admin_post(admin, f"/admin/users/{user_id}/sign-out-everywhere", user_id)
    assert r.status_code == 302
    page = admin.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert "3 sessions ended" in page and 'id="no-sessions"' in page
    assert not any(_in(c) for c in clients) and _in(admin, "/admin/users/")


def test_admin_deactivates_and_reactivates_without_reviving_sessions(app, engine, staff, account):
    client = _signed_in(app, account)
    thief = _copy(app, client)
    admin = _signed_in(app, staff["admin"])
    user_id = _user_id(engine, account)
    assert _admin_post(admin, f"/admin/users/{user_id}/deactivate", user_id).status_code == 302
    assert not _in(client) and not _in(thief)
    assert login(app.test_client(), account).status_code == 401
    assert _admin_post(admin, f"/admin/users/{user_id}/reactivate", user_id).status_code == 302
    assert not _in(client) and not _in(thief)
    assert _in(_signed_in(app, account))


def test_an_admin_cannot_deactivate_their_own_account(app, engine, staff):
    admin = _signed_in(app, staff["admin"])
    user_id = _user_id(engine, staff["admin"])
    r = _admin_post(admin, f"/admin/users/{user_id}/deactivate", user_id)
    assert r.status_code == 302
    assert "cannot deactivate your own account" in admin.get(f"/admin/users/{user_id}").get_data(as_text=True)
    with engine.connect() as c:
        assert c.scalar(text("SELECT active FROM users WHERE id = :id"), {"id": user_id})


def test_only_admins_reach_the_session_pages(app, engine, staff, account):
    user_id = _user_id(engine, account)
    for role in ("agent", "supervisor", "crew", "analyst"):
        client = _signed_in(app, staff[role])
        assert client.get(f"/admin/users/{user_id}").status_code == 403
    assert _in(_signed_in(app, account))


def test_0017_up_and_down_alone(scratch_db):  # noqa: F811
    schema.upgrade(scratch_db)
    eng = create_engine(scratch_db, poolclass=pool.NullPool)
    try:
        with eng.connect() as c:
            assert {col["name"] for col in inspect(c).get_columns("staff_sessions")} == \
                {col.name for col in StaffSession.__table__.columns}
        _down_to(scratch_db, "0016")          # 0017 and whatever is stacked on it
        with eng.connect() as c:
            assert c.scalar(text("SELECT to_regclass('staff_sessions')")) is None
            assert not c.scalar(text("SELECT count(*) FROM pg_trigger WHERE tgname = 'users_end_sessions'"))
            assert c.scalar(text("SELECT to_regclass('users')")) is not None
        schema.upgrade(scratch_db)
        with eng.connect() as c:
            assert c.scalar(text("SELECT to_regclass('staff_sessions')")) is not None
    finally:
        eng.dispose()


@pytest.mark.browser
def test_a_copied_cookie_stops_working_after_sign_out_in_the_browser(browser, live_server, account):
    mine = browser.new_context(bypass_csp=True)
    stolen = browser.new_context(bypass_csp=True)
    try:
        page = mine.new_page()
        browser_login(page, live_server, account)
        page.wait_for_url(f"{live_server}/agent/**")
        stolen.add_cookies(mine.cookies())                   # the cookie copied off the kiosk
        thief = stolen.new_page()
        thief.goto(f"{live_server}/agent/")
        assert urlsplit(thief.url).path == "/agent/"
        page.click("button:has-text('Sign out')")
        page.wait_for_url(f"{live_server}/login")
        thief.goto(f"{live_server}/agent/")
        assert urlsplit(thief.url).path == "/login"
        assert stolen.request.get(f"{live_server}/api/v1/services").status in (401, 403)
    finally:
        stolen.close()
        mine.close()


def test_the_command_line_ends_sessions_and_deactivates(app, engine, account, db_url):
    """For whoever answers a lost phone at 3 a.m. with only a shell: the same as the admin pages."""
    from tests.test_platform import PIN311

    def pin311(*args):
        return subprocess.run([PIN311, "users", *args], capture_output=True, text=True,
                              env={**os.environ, "DATABASE_URL": db_url})
    desk, phone = _signed_in(app, account), _signed_in(app, account)
    copy = _copy(app, phone)
    done = pin311("sign-out", account)
    assert done.returncode == 0 and "2 sessions ended" in done.stdout
    assert not _in(desk) and not _in(phone) and not _in(copy)
    assert pin311("deactivate", account).returncode == 0
    assert login(app.test_client(), account).status_code != 302          # refused: stays on the form
    assert pin311("reactivate", account).returncode == 0
    assert not _in(copy) and _in(_signed_in(app, account))
    unknown = pin311("sign-out", "no-such-person")
    assert unknown.returncode != 0 and "no staff account 'no-such-person'" in unknown.stderr
