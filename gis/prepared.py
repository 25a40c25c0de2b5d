"""The hot statements (intake, API key check, locate) as server-side prepared statements.

Why: PostgreSQL spent longer planning the intake statement than executing it (0.65 ms vs 0.8 ms), on
every request. PREPARE once per database session, EXECUTE after: after five runs PostgreSQL keeps a
generic plan (still GiST index scans, the point being a run-time parameter) and plans nothing.

Why autocommit: psycopg2 sends BEGIN and COMMIT as round trips of their own, and each of these statements
is a whole transaction by itself (one statement is atomic; the server commits it, synchronous_commit on,
before it answers). When the caller has nothing open, the statement runs alone: one round trip, not three.
When a transaction is open (an idempotency lookup or a geocoding query came first) it runs inside it, as
the plain statement: a failure there would abort the caller's transaction, so nothing is retried there.

Which statements a session has prepared is kept in the pooled connection's `info`, which SQLAlchemy
empties whenever it replaces the connection (database restart, invalidation): a fresh session prepares
again. Should a session lose them anyway (DISCARD ALL, a pooler) or a schema change alter a result type,
the statement is prepared again and re-run once — possible because no transaction was open. (A pooler
that hands each transaction a different server session, PgBouncer in transaction mode, does not fit.)
"""
import re
from collections import namedtuple

import psycopg2.extensions
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound

_PARAM = re.compile(r"(?<![:\w]):(\w+)")           # SQLAlchemy's :name, not PostgreSQL's ::cast
_PREPARED = "pin311.prepared"                      # key in the pooled connection's info dict
# "prepared statement does not exist", "cached plan must not change result type"
_RETRY_CODES = ("26000", "0A000")


class Statement:
    """One SQL text with :name parameters, each given a PostgreSQL type in `types`."""

    def __init__(self, name, sql, types):
        if "%" in sql:
            raise ValueError("% would need escaping for psycopg2's pyformat")
        order = []

        def number(match):
            if match.group(1) not in order:
                order.append(match.group(1))
            return f"${order.index(match.group(1)) + 1}"

        body = _PARAM.sub(number, sql)
        self.name, self.params = name, tuple(order)
        self.prepare_sql = f"PREPARE {name} ({', '.join(types[p] for p in order)}) AS {body}"
        self.execute_sql = f"EXECUTE {name} ({', '.join(f'%({p})s' for p in order)})"
        self.plain_sql = _PARAM.sub(r"%(\1)s", sql)
        self._row = None                   # the named-tuple type of its rows, made on first use

    def run(self, conn, params):
        """Execute on a SQLAlchemy Connection; returns its result."""
        raw = conn.connection.dbapi_connection
        if raw.status != psycopg2.extensions.STATUS_READY:       # inside the caller's transaction
            return conn.exec_driver_sql(self.plain_sql, params)
        was_autocommit = raw.autocommit
        raw.autocommit = True
        try:
            try:
                return self._execute(conn, params)
            except DBAPIError as exc:
                if getattr(exc.orig, "pgcode", None) not in _RETRY_CODES:
                    raise
                self._forget(conn)
                return self._execute(conn, params)
        finally:
            if not raw.closed:
                raw.autocommit = was_autocommit

    def _execute(self, conn, params):
        done = conn.connection.info.setdefault(_PREPARED, set())
        if self.name not in done:
            conn.exec_driver_sql(self.prepare_sql)
            done.add(self.name)
        return self._on_cursor(conn, params)

    def _on_cursor(self, conn, params):
        # Straight on psycopg2's cursor: SQLAlchemy's execution context and result metadata cost more CPU
        # than the driver itself here (0.09 vs 0.07 ms per intake). Errors become the exceptions
        # SQLAlchemy raises, a lost connection is invalidated as it would do: the app sees no difference.
        raw = conn.connection.dbapi_connection
        cur = raw.cursor()
        try:
            cur.execute(self.execute_sql, params)
            rows = cur.fetchall() if cur.description else []
        except psycopg2.Error as err:
            gone = conn.dialect.is_disconnect(err, raw, cur)
            if gone:
                conn.invalidate(err)
            raise DBAPIError.instance(self.execute_sql, params, err, psycopg2.Error,
                                      connection_invalidated=gone, dialect=conn.dialect) from err
        finally:
            cur.close()
        names = tuple(column.name for column in cur.description or ())
        if self._row is None or self._row._fields != names:
            self._row = namedtuple("Row", names)
        return Rows(self._row._make(r) for r in rows)

    def _forget(self, conn):
        conn.connection.info.get(_PREPARED, set()).discard(self.name)
        exists = conn.exec_driver_sql("SELECT 1 FROM pg_prepared_statements WHERE name = %(n)s",
                                      {"n": self.name}).first()
        if exists:   # a plan whose result type changed: drop it, PREPARE again
            conn.exec_driver_sql(f"DEALLOCATE {self.name}")


class Rows(list):
    """The rows of a prepared statement, with the accessors of SQLAlchemy's result that callers use."""

    def one(self):
        if len(self) != 1:
            raise NoResultFound("no row") if not self else MultipleResultsFound("more than one row")
        return self[0]

    def first(self):
        return self[0] if self else None

    def scalar(self):
        return self[0][0] if self else None
