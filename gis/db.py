"""One cached SQLAlchemy engine per database URL (pygeoapi's pattern), shared by the app and the CLI."""
import os
import select
import time
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg2
from sqlalchemy import create_engine, event, exc

# A connection back from the pool within this many seconds is checked without a round trip (below).
PING_IDLE_SECONDS = 10
_CHECKED_IN = "pin311.checked_in"      # in the pooled connection's info: when it went back to the pool
# The city's time zone (the demo city's by default): every session of ours runs in it, so a "day" or a
# "week" in SQL — dashboards, date filters, exports — is the city's, not UTC's. Instants are unchanged.
DEFAULT_TIMEZONE = "America/New_York"


def city_timezone():
    """PIN311_TIMEZONE, else the demo city's; ValueError when it names no time zone."""
    name = os.environ.get("PIN311_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"PIN311_TIMEZONE must be a time zone name such as America/Chicago, got {name!r}") from None
    return name


def city_today():
    """Today's date in the city (a server in UTC is already in tomorrow on a Boston evening)."""
    return datetime.now(ZoneInfo(city_timezone())).date()


@lru_cache(maxsize=8)
def engine_for(url, statement_timeout_ms=5000, pool_size=5):
    """An engine whose connections are checked before use, whose statements time out, and whose sessions
    run in the city's time zone (city_timezone()).

    The check turns a database restart into one reconnect instead of an error per pooled connection;
    the statement timeout keeps a stuck query from holding a web worker forever.
    """
    options = (f"-c statement_timeout={int(statement_timeout_ms)} -c lock_timeout={int(statement_timeout_ms)} "
               f"-c timezone={city_timezone()}")       # a tz database name: no spaces, safe in options
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        connect_args={"connect_timeout": 3, "options": options, "application_name": "pin311"},
        future=True,
    )
    event.listen(engine, "checkin", _stamp)
    event.listen(engine, "checkout", _check_alive)
    return engine


def _stamp(dbapi_connection, record):
    record.info[_CHECKED_IN] = time.monotonic()


def _check_alive(dbapi_connection, record, proxy):
    """The pool's pre-ping, cheaper: SQLAlchemy's pool_pre_ping sends SELECT 1 on every checkout, a round
    trip per web request (~15 % of a worker's time at full intake load). A server that ends a session
    (restart, pg_terminate_backend, idle timeout) sends an error and closes the socket, so on a connection
    used moments ago a socket with anything to read is enough to know; one idle longer (a firewall may
    have dropped it silently) still gets the real SELECT 1. Raising makes the pool connect afresh."""
    if dbapi_connection.closed:
        raise exc.InvalidatePoolError("connection closed")
    checked_in = record.info.get(_CHECKED_IN)
    if checked_in is None:                  # just connected (the pool empties info on reconnect)
        return
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise exc.InvalidatePoolError("the server closed the connection while it was in the pool")
    if time.monotonic() - checked_in > PING_IDLE_SECONDS:
        autocommit = dbapi_connection.autocommit
        try:
            dbapi_connection.autocommit = True      # no BEGIN for the ping
            with dbapi_connection.cursor() as cur:
                cur.execute("SELECT 1")
            dbapi_connection.autocommit = autocommit
        except psycopg2.Error as error:
            raise exc.InvalidatePoolError(f"ping failed: {error}") from error
