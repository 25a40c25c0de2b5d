"""Every Flask extension, instantiated once here and bound to the app in create_app()."""
import logging

from flask import current_app, g, request
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
UNLIMITED_BLUEPRINTS = set()   # blueprints with no rate limit; see unlimited()


def unlimited(bp):
    """Skip the rate limiter for a whole blueprint. Flask-Limiter's own `exempt` still resolves every
    request's limits before deciding (~0.1 ms of CPU); a request filter is asked first."""
    UNLIMITED_BLUEPRINTS.add(bp.name)


@limiter.request_filter
def _in_unlimited_blueprint():
    return request.blueprint in UNLIMITED_BLUEPRINTS
