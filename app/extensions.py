"""Every Flask extension, instantiated once here and bound to the app in create_app()."""
import logging

from flask import current_app, g
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.exc import DBAPIError

from gis import ratelimit  # noqa: F401  (registers the pin311:// rate-limit storage with `limits`)
from gis.db import engine_for

log = logging.getLogger(__name__)


class Database:
    """The app's SQLAlchemy engine, and one connection per request closed on teardown (flaskr's pattern).

    Routes and services take a Connection; there is no ORM session in the request path, which keeps
    intake at one round-trip (see ../shared/notes/performance-anchors.md).
    """

    def init_app(self, app):
        app.extensions["pin311.engine"] = engine_for(
            app.config["DATABASE_URL"], app.config["STATEMENT_TIMEOUT_MS"], app.config["DB_POOL_SIZE"])
        app.teardown_appcontext(self._close)

    @property
    def engine(self):
        return current_app.extensions["pin311.engine"]

    def connection(self):
        """The request's connection (opened on first use)."""
        if "db_conn" not in g:
            g.db_conn = self.engine.connect()
        return g.db_conn

    @staticmethod
    def _close(exc):
        conn = g.pop("db_conn", None)
        if conn is None:
            return
        try:
            conn.close()
        except DBAPIError:
            # The server went away mid-request (restart, failover): closing rolls back on a dead socket.
            # The response is already decided (503 by the error handler); raising here would turn it into
            # a bare 500 from the WSGI server. SQLAlchemy has recognised the disconnect and invalidated the
            # pooled connection, so the pool never hands it out again.
            log.warning("database connection lost at the end of a request; discarded")


db = Database()
login_manager = LoginManager()
csrf = CSRFProtect()
# Counters in PostgreSQL (gis.ratelimit, RATELIMIT_STORAGE_URI "pin311://"), so every worker counts
# against the same limit; create_app passes the database URL as the storage's option.
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def limits_per_view_only(app):
    """Take out Flask-Limiter's app-wide check when every limit is a view's own (call once the blueprints
    are registered).

    A view's @limiter.limit is checked by the decorator's wrapper around that view. The app-wide
    before_request hook is for default, application, meta and blueprint limits, and pin311 has none: yet
    it resolved limits for every request, ~0.03 ms of a worker's CPU (intake 860 -> 901 req/s, 6 of 8
    alternating pairs, 2026-12-08). Should such limits be configured one day, the hook stays."""
    manager = limiter.limit_manager
    if manager.default_limits or manager.application_limits or manager._blueprint_limits or limiter._meta_limits:
        return
    hooks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in hooks:          # absent when RATELIMIT_ENABLED is off
        hooks.remove(limiter._check_request_limit)
