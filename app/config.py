"""Settings, read from the environment (DATABASE_URL, SECRET_KEY, PIN311_*).

A missing or malformed setting fails at start-up with a message that names it, never later.
"""
import os
import secrets
from datetime import timedelta

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app import localdb
from gis import site
from gis.db import city_timezone


class ConfigError(RuntimeError):
    pass


def database_url():
    """DATABASE_URL when set, otherwise the project's local cluster."""
    raw = os.environ.get("DATABASE_URL", "").strip()
    if not raw:
        return localdb.url()
    if raw.startswith("postgres://"):  # Heroku-style URLs
        raw = "postgresql://" + raw[len("postgres://"):]
    if raw.startswith("postgresql://"):
        raw = "postgresql+psycopg2://" + raw[len("postgresql://"):]
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise ConfigError(f"DATABASE_URL is not a database URL: {exc}") from None
    if not url.drivername.startswith("postgresql"):
        raise ConfigError("DATABASE_URL must point at PostgreSQL with PostGIS "
                          f"(got a {url.drivername} URL)")
    return raw


def uses_local_cluster():
    return not os.environ.get("DATABASE_URL", "").strip()


def _public_url():
    """PIN311_PUBLIC_URL (gis.site, which the worker reads too): the site's own address, from which the links
    that are stored (a resident's photo) are made: a request's Host header is the client's to write."""
    try:
        return site.public_url()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _int(name, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def _positive(name, default):
    value = _int(name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def _secret_key():
    key = os.environ.get("SECRET_KEY")
    if key:
        if len(key) < 16:
            raise ConfigError("SECRET_KEY is too short: use at least 16 random characters")
        return key
    if os.environ.get("PIN311_ENV", "development") == "production":
        raise ConfigError("SECRET_KEY must be set when PIN311_ENV=production")
    # Development: a key per process start is enough (sessions end on restart).
    return secrets.token_hex(32)


def _limit(name, default):
    """A rate limit in Flask-Limiter's notation ("120 per minute;2000 per day"), checked at start-up."""
    import limits      # here, not at the top: ~20 ms that the batch commands, which never read it, would pay
    value = os.environ.get(name, "").strip() or default
    try:
        limits.parse_many(value)
    except ValueError:
        raise ConfigError(f"{name} must be a rate limit like '120 per minute', got {value!r}") from None
    return value


def _proxy_hops():
    hops = _int("PIN311_PROXY_HOPS", 0)
    if hops < 0:
        raise ConfigError(f"PIN311_PROXY_HOPS must be 0 (no proxy) or the number of proxies in front, got {hops}")
    return hops


def _timezone():
    try:
        return city_timezone()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class Config:
    """Built from the environment at create_app() time, not at import time."""

    def __init__(self):
        self.ENV = os.environ.get("PIN311_ENV", "development")
        self.SECRET_KEY = _secret_key()
        self.DATABASE_URL = database_url()
        self.STATEMENT_TIMEOUT_MS = _int("PIN311_STATEMENT_TIMEOUT_MS", 5000)
        self.DB_POOL_SIZE = _int("PIN311_DB_POOL_SIZE", 5)
        self.JURISDICTION_ID = os.environ.get("PIN311_JURISDICTION_ID", "boston.demo.pin311")
        self.CITY_NAME = os.environ.get("PIN311_CITY_NAME", "Boston (demo)")
        self.TIMEZONE = _timezone()     # shown on pages; sessions get it in gis.db
        self.OPEN311_POST_LIMIT = _limit("PIN311_OPEN311_POST_LIMIT", "120 per minute")      # per API key
        self.OPEN311_POST_IP_LIMIT = _limit("PIN311_OPEN311_POST_IP_LIMIT", "600 per minute")  # per address
        self.PUBLIC_REPORT_LIMIT = _limit("PIN311_PUBLIC_REPORT_LIMIT", "5 per minute;30 per hour")
        # Proxies in front that we trust to set X-Forwarded-For/-Proto; 0 = clients connect directly.
        self.PROXY_HOPS = _proxy_hops()
        # Each open console's live stream holds one server thread: at most this many per process, so the
        # other threads always serve requests (pin311 serve sets it from --threads; see the README).
        self.LIVE_STREAMS = _int("PIN311_LIVE_STREAMS", 4)
        if self.LIVE_STREAMS < 1:
            raise ConfigError(f"PIN311_LIVE_STREAMS must be at least 1, got {self.LIVE_STREAMS}")
        self.LIVE_STREAM_SECONDS = 600      # then the browser reconnects (and may land on another process)
        self.BASEMAP_URL = os.environ.get("PIN311_BASEMAP_URL", "")
        self.PUBLIC_URL = _public_url()
        self.DUPLICATE_RADIUS_M = _int("PIN311_DUPLICATE_RADIUS_M", 150)
        self.MAX_CONTENT_LENGTH = _int("PIN311_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
        # The resident's report form alone may be larger (app.security.Request): a phone photo over the photo
        # limit is then refused with the form as it was typed, instead of a 413 that loses it.
        self.MAX_REPORT_BYTES = max(_int("PIN311_MAX_REPORT_BYTES", 40 * 1024 * 1024), self.MAX_CONTENT_LENGTH)
        self.MEDIA_DIR = os.environ.get("PIN311_MEDIA_DIR", str(localdb.ROOT / "var" / "media"))
        self.GEOCODER = os.environ.get("PIN311_GEOCODER", "local")
        if self.GEOCODER not in ("local", "arcgis"):
            raise ConfigError(f"PIN311_GEOCODER must be 'local' or 'arcgis', got {self.GEOCODER!r}")
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = self.ENV == "production"
        self.REMEMBER_COOKIE_SECURE = self.ENV == "production"
        self.PERMANENT_SESSION_LIFETIME = timedelta(minutes=_int("PIN311_SESSION_MINUTES", 480))
        # Server-side sessions (gis/sessions.py): ended after this long without a request (a shift), and
        # after this long whatever their use, so even a copied cookie kept busy dies within a day.
        self.SESSION_IDLE_MINUTES = _positive("PIN311_SESSION_IDLE_MINUTES", 12 * 60)
        self.SESSION_MAX_HOURS = _positive("PIN311_SESSION_MAX_HOURS", 24)
        self.WTF_CSRF_TIME_LIMIT = None  # the session lifetime bounds it
        self.TESTING = False

    def update(self, overrides):
        for key, value in (overrides or {}).items():
            setattr(self, key, value)
        return self
