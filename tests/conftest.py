"""Test fixtures: a real PostGIS database with the demo city, built once and cloned per run.

The demo city is loaded into a template database named after a hash of everything that shapes it
(migrations, data/, the loaders); each test session clones the template (CREATE DATABASE … TEMPLATE),
which takes a second instead of the half-minute a fresh load costs.
"""
import hashlib
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from app import localdb, schema
from app.config import database_url, uses_local_cluster
from gis import demo
from gis.db import engine_for
from gis.services import catalogue

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "boston"
# One database per test session, so sessions running side by side never drop each other's.
TEST_DB = f"pin311_test_{os.getpid()}"
LOADERS = ("layers.py", "catalogue.py", "bulk.py", "demo.py", "spatial_index.py", "routing.py", "address.py")
STAFF_PASSWORD = "correct-horse-311"


def _fingerprint():
    h = hashlib.sha1()
    for folder, pattern in (("migrations/versions", "*.py"), ("data", "*"), ("gis", "*.py")):
        for path in sorted((ROOT / folder).glob(pattern)):
            if path.is_file() and (folder != "gis" or path.name in LOADERS):
                h.update(path.name.encode())
                h.update(path.read_bytes())
    return h.hexdigest()[:10]


def _admin_url():
    base = make_url(database_url())
    return base.set(database="postgres")


def _exec_autocommit(url, *statements):
    engine = create_engine(url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            results = [conn.execute(text(s)).fetchall() if s.lstrip().upper().startswith("SELECT")
                       else conn.execute(text(s)) for s in statements]
        return results
    finally:
        engine.dispose()


def _build_template(admin, name):
    url = str(make_url(database_url()).set(database=name).render_as_string(hide_password=False))
    _exec_autocommit(admin, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    schema.upgrade(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        for _ in demo.load(engine, progress=False):
            pass
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def db_url():
    if uses_local_cluster():
        localdb.start()
    admin = _admin_url().render_as_string(hide_password=False)
    template = f"pin311_tpl_{_fingerprint()}"
    guard = create_engine(admin, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with guard.connect() as lock_conn:
        lock_conn.execute(text("SELECT pg_advisory_lock(311311)"))
        exists = lock_conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :t"), {"t": template}).first()
        if not exists:
            for (old,) in lock_conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE 'pin311_tpl_%'")):
                lock_conn.execute(text(f'DROP DATABASE IF EXISTS "{old}"'))
            _build_template(admin, template)
        lock_conn.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)'))
        lock_conn.execute(text(f'CREATE DATABASE "{TEST_DB}" TEMPLATE "{template}"'))
        lock_conn.execute(text("SELECT pg_advisory_unlock(311311)"))
    guard.dispose()
    url = make_url(database_url()).set(database=TEST_DB).render_as_string(hide_password=False)
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url   # subprocesses (CLI, gunicorn) started by tests use it too
    yield url
    if saved is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = saved
    from gis.db import engine_for as cached
    cached(url).dispose()
    _exec_autocommit(admin, f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')


@pytest.fixture(scope="session")
def engine(db_url):
    return engine_for(db_url)


@pytest.fixture
def conn(engine):
    with engine.connect() as c:
        yield c


def high_water_marks(eng):
    """The last request and outbox ids now: what forget_since() keeps."""
    with eng.connect() as c:
        return tuple(c.execute(text("SELECT (SELECT coalesce(max(id), 0) FROM service_requests), "
                                    "(SELECT coalesce(max(id), 0) FROM outbox)")).one())


def forget_since(eng, marks):
    """Remove the requests (with their contacts and events) and outbox rows made after `marks`."""
    with eng.begin() as c:
        c.execute(text("DELETE FROM contacts WHERE request_id > :r"), {"r": marks[0]})
        c.execute(text("UPDATE service_requests SET duplicate_of = NULL WHERE duplicate_of > :r"),
                  {"r": marks[0]})
        c.execute(text("DELETE FROM service_requests WHERE id > :r"), {"r": marks[0]})
        c.execute(text("DELETE FROM outbox WHERE id > :o"), {"o": marks[1]})


@pytest.fixture(autouse=True)
def _forget_requests_made_by_the_test(request):
    """Tests share one database: remove the requests, outbox rows and keys a test created.
    Tests marked `story` are steps of one story (tests/test_scenarios.py): its module fixture keeps what
    each step made for the next, and forgets it all when the module ends."""
    if ("db_url" not in request.fixturenames and "app" not in request.fixturenames) \
            or request.node.get_closest_marker("story"):
        yield
        return
    eng = request.getfixturevalue("engine")
    marks = high_water_marks(eng)
    catalogue.clear()
    yield
    forget_since(eng, marks)


@pytest.fixture(scope="session")
def app(db_url):
    from app import create_app
    # LIVE_STREAMS: the test server has a thread per connection, and a closed console's stream keeps its
    # place until its next keep-alive finds the socket gone; the cap itself is tested in test_agent.py.
    flask_app = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": "test-secret-key-0123456789",
                            "RATELIMIT_ENABLED": False, "LIVE_STREAMS": 64})
    return flask_app


@pytest.fixture(autouse=True)
def _api_keys_checked_again():
    """gis.apikeys remembers valid keys for a second; each test starts asking the database again."""
    from gis import apikeys
    apikeys.forget_checked()
    yield


@pytest.fixture(autouse=True)
def _rate_limits_off_again():
    """Any create_app() without RATELIMIT_ENABLED=False (Flask-Limiter's default is on) switches the one
    global limiter on for every app in the process; the suite's apps run without limits, so switch it
    off again after each test."""
    yield
    from app.extensions import limiter
    if limiter.enabled and getattr(limiter, "_storage", None) is not None:   # None: no app made yet
        limiter.enabled = False
        limiter.reset()


@pytest.fixture
def rate_limited(db_url, monkeypatch):
    """Makes an app with rate limits on. Flask-Limiter's limiter is one global object whose switch the
    last init_app() sets, so it is put back (and its counters emptied) after the test: otherwise every
    later test would run rate-limited."""
    from app import create_app
    from app.extensions import limiter
    monkeypatch.setattr(limiter, "enabled", limiter.enabled)

    def make(**config):
        made = create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": "test-secret-key-0123456789",
                           **config, "RATELIMIT_ENABLED": True})
        limiter.reset()
        return made
    yield make
    limiter.reset()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def staff(engine):
    """One account per role, password STAFF_PASSWORD; crew member of animal-control-c6."""
    from app.auth import users
    with engine.begin() as c:
        for role in ("agent", "supervisor", "crew", "analyst", "admin"):
            crews = ("animal-control-c6",) if role == "crew" else ()
            users.create(c, f"test-{role}", STAFF_PASSWORD, role, f"Test {role.title()}", crews)
    return {role: f"test-{role}" for role in ("agent", "supervisor", "crew", "analyst", "admin")}


@pytest.fixture(scope="session")
def api_key(engine):
    from gis import apikeys
    with engine.begin() as c:
        _, key = apikeys.create(c, "test suite", ("open311:write", "api:read", "api:write"))
    return key


def login(client, username, password=STAFF_PASSWORD):
    """Sign in through the real form (with its CSRF token); returns the response."""
    import re
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(r'name="csrf_token" value="([^"]+)"', page)
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token.group(1) if token else ""})


def needs_shared():
    return pytest.mark.skipif(not SHARED.exists(), reason=f"needs the shared Boston data at {SHARED} "
                                                          "(present in CI; absent in a plain clone)")


# --- a live server and a real browser (Debian's chromium through Playwright) -------------------------

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


@pytest.fixture(scope="session")
def live_server(app):
    """The app served over real HTTP on a free loopback port (threaded, like gunicorn's gthread)."""
    import threading
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make setup installs it)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    # Tests drive pages with Playwright's evaluate/wait_for_function, which the app's strict CSP
    # (script-src 'self', no eval) would block; tests/test_csp_pages.py checks the pages under the real CSP.
    context = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True)
    p = context.new_page()
    yield p
    context.close()


def screenshot(page, name):
    """Save a screenshot as a test artifact (tests/artifacts/NAME.png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def browser_login(page, live_server, username, password=STAFF_PASSWORD):
    page.goto(f"{live_server}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
