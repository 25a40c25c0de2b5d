"""Sign-in hardening: where it sends you afterwards, whose address counts behind a proxy, what a failure
gives away, and when a session stops being valid."""
import re
import uuid
from urllib.parse import quote, urlsplit

import pytest
from flask import request
from limits import parse
from sqlalchemy import text

from app.auth import lockout, users
from app.config import Config, ConfigError
from tests.conftest import STAFF_PASSWORD


def _csrf(client):
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def _sign_in(client, username, password=STAFF_PASSWORD, query="", **headers):
    return client.post("/login" + query, data={"username": username, "password": password,
                                               "csrf_token": _csrf(client)}, headers=headers)


LEAVING = ["//evil.example/phish", "///evil.example", "/\\evil.example", "/\\\\evil.example", "\\\\evil.example",
           "/\t/evil.example/phish", "/\n/evil.example", "/\r\n/evil.example", "\t//evil.example", " //evil.example",
           "\x00//evil.example", "/\x7f/evil.example", "https://evil.example", "http:/evil.example",
           "//evil.example@localhost", "javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,x",
           "evil.example", "", "/%2F%2Fevil.example"]


@pytest.mark.parametrize("target", LEAVING)
def test_sign_in_never_redirects_off_site(app, staff, target):
    # The query string carries the value percent-encoded, as a browser sends it ("/%09/…" for a tab).
    r = _sign_in(app.test_client(), staff["agent"], query="?next=" + quote(target, safe=""))
    assert r.status_code == 302
    location = r.headers["Location"]
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc, (target, location)
    assert location.startswith("/") and not location.startswith(("//", "/\\")), (target, location)


def test_sign_in_tab_trick_from_the_qa_report(app, staff):
    r = _sign_in(app.test_client(), staff["agent"], query="?next=/%09/evil.example/phish")
    assert r.headers["Location"] == "/agent/"


@pytest.mark.parametrize("target", ["/agent/", "/crew/tickets/1000123?tab=notes", "/dashboards/?period=today#map",
                                    "/%2F%2Fstill-a-path"])
def test_sign_in_returns_to_a_path_on_this_site(app, staff, target):
    r = _sign_in(app.test_client(), staff["admin"], query="?next=" + quote(target, safe=""))
    assert r.headers["Location"] == target


def _app_showing_the_client_address(make, hops):
    made = make(PROXY_HOPS=hops)
    made.add_url_rule("/test-client-address", "test_client_address", lambda: request.remote_addr)
    return made.test_client()


@pytest.mark.parametrize("hops, seen", [(1, "203.0.113.7"), (0, "127.0.0.1")])
def test_client_address_comes_from_the_trusted_proxy_only(rate_limited, hops, seen):
    client = _app_showing_the_client_address(rate_limited, hops)
    assert client.get("/test-client-address", headers={"X-Forwarded-For": "203.0.113.7"}).text == seen
    # a client's own X-Forwarded-For entry comes first; the proxy appends what it saw, and only that counts
    spoofed = client.get("/test-client-address", headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.7"})
    assert spoofed.text == seen
    assert client.get("/test-client-address").text == "127.0.0.1"


def _refused_sign_in(client, address):
    # An over-long password fails the form before any hash is computed, yet counts against the limit.
    return _sign_in(client, "nobody-at-all", "x" * 201, **{"X-Forwarded-For": address}).status_code


@pytest.mark.parametrize("hops, other_address_code", [(1, 401), (0, 429)])
def test_sign_in_limit_counts_per_client_behind_the_proxy(rate_limited, hops, other_address_code):
    client = rate_limited(PROXY_HOPS=hops).test_client()
    codes = [_refused_sign_in(client, "203.0.113.7") for _ in range(21)]
    assert codes == [401] * 20 + [429]
    assert _refused_sign_in(client, "198.51.100.4") == other_address_code


@pytest.mark.parametrize("raw", ["-1", "two"])
def test_proxy_hops_must_be_a_count(monkeypatch, raw):
    monkeypatch.setenv("PIN311_PROXY_HOPS", raw)
    with pytest.raises(ConfigError, match="PIN311_PROXY_HOPS"):
        Config()
    monkeypatch.delenv("PIN311_PROXY_HOPS")
    assert Config().PROXY_HOPS == 0


@pytest.fixture
def account(engine):
    """A throwaway agent account with a name of its own (failure counts are kept by name), removed afterwards."""
    name = f"test-signin-{uuid.uuid4().hex[:8]}"
    with engine.begin() as c:
        users.create(c, name, STAFF_PASSWORD, "agent")
    yield name
    with engine.begin() as c:
        c.execute(text("DELETE FROM users WHERE username = :u"), {"u": name})


def _set_active(engine, username, active):
    with engine.begin() as c:
        c.execute(text("UPDATE users SET active = :a WHERE username = :u"), {"a": active, "u": username})


def _answer(app, username, password, address="127.0.0.1"):
    """Status and page of a sign-in, with the echoed name and the form's token blanked."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    r = _sign_in(client, username, password)
    return r.status_code, re.sub(r'(value|content)="[^"]*"', r'\1=""', r.get_data(as_text=True))


def test_refusals_look_the_same_whatever_the_reason(app, engine, account, caplog):
    caplog.set_level("WARNING", logger="app.auth.users")
    unknown = _answer(app, account + "-nobody", "wrong-password-123")
    assert unknown[0] == 401 and users.REFUSED in unknown[1]
    assert _answer(app, account, "wrong-password-123") == unknown
    _set_active(engine, account, False)
    assert _answer(app, account, STAFF_PASSWORD) == unknown
    _set_active(engine, account, True)
    for _ in range(lockout.PER_ADDRESS.amount - 2):
        assert _answer(app, account, "wrong-password-123") == unknown
    assert _answer(app, account, STAFF_PASSWORD) == unknown     # locked out from this address
    reasons = " | ".join(r.getMessage() for r in caplog.records)
    for reason in ("no such user", "wrong password", "account inactive", "too many failures from this address"):
        assert reason in reasons


def test_every_attempt_costs_one_hash_check(engine, account, monkeypatch):
    checks, made = [], []
    check, generate = users.check_password_hash, users.generate_password_hash
    monkeypatch.setattr(users, "check_password_hash", lambda h, p: checks.append(h) or check(h, p))
    monkeypatch.setattr(users, "generate_password_hash", lambda p: made.append(p) or generate(p))
    users._dummy_hash.cache_clear()
    attempts = [(account + "-nobody", "x", None, None), (account + "-nobody-2", "y", None, None),
                (account, "wrong-password-123", None, None), (account, STAFF_PASSWORD, None, None),
                (account, STAFF_PASSWORD, "active = false", None),
                (account, STAFF_PASSWORD, "active = true", "too many failures from this address")]
    with engine.connect() as c:                               # rolled back on close
        for username, password, state, refusing in attempts:
            if state:
                c.execute(text(f"UPDATE users SET {state} WHERE username = :u"), {"u": account})
            checks.clear()
            users.authenticate(c, username, password, refusing)
            assert len(checks) == 1, (username, state, refusing)
    assert len(made) == 1     # the unknown names' hash is made once, not per attempt


def test_guessing_from_one_address_locks_out_only_that_address(app, account):
    for _ in range(lockout.PER_ADDRESS.amount):
        assert _answer(app, account, "wrong-password-123", "203.0.113.66")[0] == 401
    assert _answer(app, account, STAFF_PASSWORD, "203.0.113.66")[0] == 401     # even the right password
    assert _answer(app, account, STAFF_PASSWORD, "198.51.100.20")[0] == 302     # the colleague at the office
    # an IPv6 client holds its whole /64: changing the last bits does not buy more guesses
    for _ in range(lockout.PER_ADDRESS.amount):
        _answer(app, account, "wrong-password-123", "2001:db8:1:2::1")
    assert _answer(app, account, STAFF_PASSWORD, "2001:db8:1:2::ffff")[0] == 401
    assert _answer(app, account, STAFF_PASSWORD, "2001:db8:1:3::1")[0] == 302


def test_guessing_from_many_addresses_meets_a_ceiling_per_name(app, account, monkeypatch):
    monkeypatch.setattr(lockout, "PER_NAME", parse("3 per 15 minutes"))    # 50 in service
    for n in range(3):
        assert _answer(app, account, "wrong-password-123", f"203.0.113.{n}")[0] == 401
    assert _answer(app, account, STAFF_PASSWORD, "198.51.100.20")[0] == 401


def test_a_success_forgives_the_address_its_mistakes(app, account):
    for _ in range(lockout.PER_ADDRESS.amount - 1):
        _answer(app, account, "wrong-password-123")
    assert _answer(app, account, STAFF_PASSWORD)[0] == 302
    for _ in range(lockout.PER_ADDRESS.amount - 1):
        _answer(app, account, "wrong-password-123")
    assert _answer(app, account, STAFF_PASSWORD)[0] == 302


def _signed_in(app, username):
    client = app.test_client()
    assert _sign_in(client, username).status_code == 302
    assert client.get("/agent/").status_code == 200
    return client


def _signed_out(client):
    r = client.get("/agent/")
    return r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/login"


def test_a_new_password_ends_existing_sessions(app, engine, account):
    old_session = _signed_in(app, account)
    with engine.begin() as c:   # what `pin311 users create` does for an existing name
        users.create(c, account, "a-brand-new-password", "agent")
    assert _signed_out(old_session)
    assert _sign_in(old_session, account, "a-brand-new-password").status_code == 302
    assert old_session.get("/agent/").status_code == 200


def test_deactivating_an_account_ends_its_sessions(app, engine, account):
    # (Flask-Login's UserMixin already counted an inactive user as signed out; load now refuses it too.)
    session = _signed_in(app, account)
    _set_active(engine, account, False)
    assert _signed_out(session)


def test_a_session_of_the_old_form_or_a_forged_stamp_is_refused(app, engine, account):
    with engine.connect() as c:
        user_id = c.scalar(text("SELECT id FROM users WHERE username = :u"), {"u": account})
    for session_id in (str(user_id), f"{user_id}:", f"{user_id}:0000", f"{user_id}:{'0' * 20}"):
        client = app.test_client()
        with client.session_transaction() as s:
            s["_user_id"] = session_id
        assert _signed_out(client), session_id
