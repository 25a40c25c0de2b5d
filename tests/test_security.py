"""Security basics: headers, cookies, sign-in lockout and rate limit, API keys, upload size."""
import hashlib
import re

import pytest
from sqlalchemy import text

from app import create_app
from app.auth import lockout, users
from app.security import content_security_policy
from gis import apikeys
from tests.conftest import ROOT, STAFF_PASSWORD, login


def test_security_headers_on_pages_api_and_errors(client):
    for path in ("/login", "/api/v1/services", "/no-such-page", "/api/v1/nothing-here"):
        r = client.get(path)
        csp = r.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, path
        assert r.headers["X-Content-Type-Options"] == "nosniff", path
        assert r.headers["X-Frame-Options"] == "DENY", path
        assert r.headers["Referrer-Policy"] == "strict-origin-when-cross-origin", path
    assert client.get("/login").headers["Cache-Control"] == "no-store"


def test_csp_allows_only_the_configured_basemap_origin():
    csp = content_security_policy("https://tiles.example.org/styles/x.json?key=1")
    assert "connect-src 'self' https://tiles.example.org;" in csp
    assert "key=1" not in csp
    assert "example" not in content_security_policy("javascript:alert(1)")


def test_session_cookie_flags(app, client, staff):
    r = login(client, staff["agent"])
    assert r.status_code == 302
    cookie = r.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # development over plain http on loopback


def test_production_cookies_are_secure_and_hsts_is_sent(db_url):
    prod = create_app({"DATABASE_URL": db_url, "ENV": "production", "SECRET_KEY": "x" * 32,
                       "SESSION_COOKIE_SECURE": False, "RATELIMIT_ENABLED": False})
    assert prod.config["SESSION_COOKIE_SECURE"] is True and prod.config["REMEMBER_COOKIE_SECURE"] is True
    r = prod.test_client().get("/login")
    assert "max-age=" in r.headers["Strict-Transport-Security"]


def test_passwords_are_hashed_with_a_current_algorithm(engine, staff):
    with engine.connect() as c:
        stored = c.scalar(text("SELECT password_hash FROM users WHERE username = :u"), {"u": staff["agent"]})
    assert STAFF_PASSWORD not in stored
    assert stored.startswith(("scrypt:", "pbkdf2:sha256:600000"))


@pytest.fixture
def victim(engine):
    with engine.begin() as c:
        users.create(c, "test-lockout", STAFF_PASSWORD, "agent")
    yield "test-lockout"
    with engine.begin() as c:
        c.execute(text("DELETE FROM users WHERE username = 'test-lockout'"))


def test_lockout_after_repeated_failures_even_with_the_right_password(app, victim, engine):
    for _ in range(lockout.PER_ADDRESS.amount):
        r = login(app.test_client(), victim, "wrong-password-123")
        assert r.status_code == 401
        assert "Wrong username or password" in r.get_data(as_text=True)
    r = login(app.test_client(), victim, STAFF_PASSWORD)
    assert r.status_code == 401
    assert users.REFUSED in r.get_data(as_text=True)   # the same answer as a wrong password
    with engine.begin() as c:  # the lock ends with its window (tests/test_auth_signin.py: per address)
        c.execute(text("UPDATE rate_limits SET expires_at = now() - interval '1 second' WHERE key LIKE :k"),
                  {"k": f"%/{victim}/%"})
    assert login(app.test_client(), victim, STAFF_PASSWORD).status_code == 302


def test_unknown_user_and_wrong_password_say_the_same(app, staff):
    a = login(app.test_client(), "nobody-at-all", "wrong-password-123").get_data(as_text=True)
    b = login(app.test_client(), staff["supervisor"], "wrong-password-123").get_data(as_text=True)
    assert "Wrong username or password" in a and "Wrong username or password" in b
    # a single failure does not lock the real account
    assert login(app.test_client(), staff["supervisor"]).status_code == 302


def test_login_is_rate_limited_per_address(rate_limited):
    client = rate_limited().test_client()
    codes = [login(client, "nobody-at-all", "wrong-password-123").status_code for _ in range(22)]
    assert codes[:20] == [401] * 20
    assert codes[-1] == 429
    assert client.get("/login").status_code == 200  # the form itself is not limited


def test_view_limits_count_without_the_app_wide_limit_check(rate_limited):
    from app.extensions import limiter
    app = rate_limited()
    assert limiter._check_request_limit not in app.before_request_funcs[None]    # taken out (no default limits)
    client = app.test_client()
    codes = [login(client, "nobody-at-all", "wrong-password-123").status_code for _ in range(21)]
    assert codes[-1] == 429                                                       # @limiter.limit on the view


def test_a_default_limit_keeps_the_app_wide_check(rate_limited, monkeypatch):
    from app.extensions import limiter
    monkeypatch.setattr(limiter.limit_manager, "_default_limits", [])   # the global limiter, put back after
    app = rate_limited(RATELIMIT_DEFAULT="2 per minute")
    assert limiter._check_request_limit in app.before_request_funcs[None]
    client = app.test_client()
    assert [client.get("/login").status_code for _ in range(3)] == [200, 200, 429]


def test_login_form_needs_its_csrf_token(app, staff):
    r = app.test_client().post("/login", data={"username": staff["agent"], "password": STAFF_PASSWORD})
    assert r.status_code in (400, 401)  # never the 302 of a successful sign-in


def test_logout_needs_post_with_csrf(app, staff):
    client = app.test_client()
    login(client, staff["agent"])
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no CSRF token
    assert client.get("/agent/").status_code == 200


def test_api_keys_are_hashed_scoped_and_revocable(app, engine):
    with engine.begin() as c:
        key_id, key = apikeys.create(c, "test-scoped", ("api:read",))
        stored = c.execute(text("SELECT prefix, key_hash FROM api_keys WHERE id = :i"), {"i": key_id}).one()
    assert key not in stored.key_hash and stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert len(stored.prefix) < 12
    client = app.test_client()
    assert client.get("/api/v1/services", headers={"X-Api-Key": key}).status_code == 200
    r = client.post("/api/v1/requests", json={"service_code": "dead-animal"}, headers={"X-Api-Key": key})
    assert r.status_code == 403 and "api:write" in r.get_json()["message"]
    assert client.get("/api/v1/services", headers={"X-Api-Key": key + "x"}).status_code == 403
    with engine.begin() as c:
        apikeys.revoke(c, key_id)
    r = client.get("/api/v1/services", headers={"X-Api-Key": key})
    assert r.status_code == 403 and "revoked" in r.get_json()["message"]
    with engine.begin() as c:
        c.execute(text("DELETE FROM api_keys WHERE id = :i"), {"i": key_id})


def test_api_without_credentials_is_refused(client):
    assert client.get("/api/v1/locate?lat=42.35&lon=-71.06").status_code == 403
    assert client.post("/api/v1/requests", json={}).status_code == 403


def test_oversized_upload_is_refused_before_reading(app, api_key):
    small = create_app({"DATABASE_URL": app.config["DATABASE_URL"], "TESTING": True,
                        "SECRET_KEY": "t" * 32, "MAX_CONTENT_LENGTH": 1024, "RATELIMIT_ENABLED": False})
    r = small.test_client().post("/api/v1/requests", data=b"{" + b" " * 4096 + b"}",
                                 content_type="application/json", headers={"X-Api-Key": api_key})
    assert r.status_code == 413
    assert r.get_json()["error"] == "request_entity_too_large"
    assert app.config["MAX_CONTENT_LENGTH"] <= 16 * 1024 * 1024


def test_pages_have_no_inline_scripts_or_handlers():
    """CSP has no 'unsafe-inline': a template with an inline script or on* handler would break."""
    bad = []
    for path in (ROOT / "app" / "templates").rglob("*.html"):
        body = path.read_text()
        for m in re.finditer(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", body):
            bad.append(f"{path}: {m.group(0)}")
        for m in re.finditer(r"\son[a-z]+\s*=\s*[\"']", body):
            bad.append(f"{path}: {m.group(0)}")
        for m in re.finditer(r"\sstyle\s*=\s*[\"']", body):
            bad.append(f"{path}: {m.group(0)}")
    assert not bad, bad
