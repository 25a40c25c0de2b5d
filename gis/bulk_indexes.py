"""Large loads without live index upkeep: the loaded tables' secondary indexes and foreign keys are set
aside inside the load's transaction and made again from their catalog definitions before it commits,
as pg_restore and pgloader do.

Kept live in every mode: primary keys, unique indexes and the constraints backing them (the import's
ON CONFLICT (public_id) needs one; a unique index rebuilt after the load could fail it for nothing), any
index a constraint uses, and the foreign keys of other tables that reference the loaded ones (they are
checked on those tables' writes, not on ours). Set aside: every other valid index of service_requests and
request_events (GiST and B-tree), and every foreign key declared on them (to crews, services, and
request_events → service_requests). Re-adding a foreign key checks every row of its table in one join,
so the constraints hold exactly as before; the new index and constraint objects are the same definitions
under the same names (pg_get_indexdef / pg_get_constraintdef), so migrations stay the one source.

The tables are locked (ACCESS EXCLUSIVE) before anything is dropped, in the same transaction: no other
session ever sees them without their indexes — readers and writers wait for the commit instead — and a
failure anywhere rolls the drops back with the load.
"""
from dataclasses import dataclass

from sqlalchemy import exc, text

from gis.errors import InvalidInput

LOADED_TABLES = ("service_requests", "request_events")
# Auto mode rebuilds when the rows to load are at least this many and at least as many as the table holds:
# upkeep of the live indexes and foreign keys costs ~55 µs per loaded request (RESULTS.md, 2026-12-07), a
# rebuild ~10 µs per request in the table after the load, and the lock it needs holds other writers back
# for the load's duration, which on a table much larger than the load is longer than the load itself.
LARGE_LOAD_MIN_ROWS = 10_000
MODES = ("auto", "yes", "no")
# Sorting for the index builds in memory: the server's default (often 64 MB) spills large builds to disk.
MAINTENANCE_WORK_MEM = "1GB"


@dataclass
class SetAside:
    indexes: list          # (name, CREATE INDEX statement)
    foreign_keys: list     # (table, constraint name, definition)

    def __len__(self):
        return len(self.indexes) + len(self.foreign_keys)


def rows_present(conn, table="service_requests"):
    """The planner's estimate of the table's rows (free; exact enough for the rule), counted when the
    table has never been analysed."""
    estimate = conn.scalar(text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"), {"t": table})
    if estimate is None or estimate < 0:
        return conn.scalar(text(f"SELECT count(*) FROM {table}"))   # a constant of ours, not input
    return int(estimate)


def wants_rebuild(mode, to_load, present):
    """The rule: 'yes' and 'no' say it; 'auto' rebuilds for a load of at least LARGE_LOAD_MIN_ROWS rows that
    is at least as large as what the table holds already (an initial migration from the old CRM)."""
    if mode not in MODES:
        raise InvalidInput(f"rebuild-indexes must be one of {', '.join(MODES)}")
    if mode == "auto":
        return to_load >= LARGE_LOAD_MIN_ROWS and to_load >= present
    return mode == "yes"


_INDEXES = text("""
SELECT quote_ident(ns.nspname) || '.' || quote_ident(ic.relname) AS name, pg_get_indexdef(i.indexrelid) AS ddl
  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace ns ON ns.oid = ic.relnamespace
 WHERE i.indrelid = ANY (CAST(:tables AS regclass[]))
   AND NOT i.indisprimary AND NOT i.indisunique AND i.indisvalid
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
 ORDER BY ic.relname""")
_FOREIGN_KEYS = text("""
SELECT CAST(c.conrelid AS regclass)::text AS tbl, quote_ident(c.conname) AS name, pg_get_constraintdef(c.oid) AS ddl
  FROM pg_constraint c
 WHERE c.contype = 'f' AND c.conrelid = ANY (CAST(:tables AS regclass[]))
 ORDER BY c.conrelid, c.conname""")


# How long 'auto' waits for the lock before loading with live indexes instead: a waiting ACCESS EXCLUSIVE
# request queues every later reader behind it, so it must not wait long for a mere speed-up.
AUTO_LOCK_WAIT = "1s"


def set_aside(conn, required=True, tables=LOADED_TABLES):
    """Lock the tables, then drop their secondary indexes and foreign keys; returns what restore() makes
    again. The lock is waited for up to the session's lock_timeout when `required` (then a clear error,
    nothing changed), up to AUTO_LOCK_WAIT otherwise (then None: nothing dropped, load with live indexes)."""
    try:
        with conn.begin_nested():        # a lock timeout rolls back to here, not the whole import
            if not required:
                conn.execute(text(f"SET LOCAL lock_timeout = '{AUTO_LOCK_WAIT}'"))   # undone below
            conn.execute(text(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"))
    except exc.OperationalError as error:
        if not required:
            return None
        raise InvalidInput(f"could not lock {', '.join(tables)} for a load with rebuilt indexes (other sessions "
                           f"are using them: {str(error.orig).strip().splitlines()[0]}); try again, or load with "
                           "--rebuild-indexes no (slower, the tables stay in use)") from None
    conn.execute(text("SELECT set_config('lock_timeout', reset_val, true) FROM pg_settings "
                      "WHERE name = 'lock_timeout'"))
    conn.execute(text(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'"))
    aside = SetAside(conn.execute(_INDEXES, {"tables": list(tables)}).all(),
                     conn.execute(_FOREIGN_KEYS, {"tables": list(tables)}).all())
    for table, name, _ in aside.foreign_keys:
        _run(conn, f"ALTER TABLE {table} DROP CONSTRAINT {name}")    # names from the catalog, quoted
    for name, _ in aside.indexes:
        _run(conn, f"DROP INDEX {name}")
    return aside


def _run(conn, sql):
    """A statement from the catalog run as it is: the driver's cursor with no parameters, so neither
    SQLAlchemy nor psycopg2 reads its casts (::text) or literals ('100%') as placeholders."""
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute(sql)


def restore(conn, aside):
    """Make again what set_aside() dropped: the indexes (built from the loaded table), then the foreign keys
    (each checks all its table's rows)."""
    # The catalog's own text, run as it is (no bind-parameter parsing of its casts and literals).
    for _, ddl in aside.indexes:
        _run(conn, ddl)
    for table, name, ddl in aside.foreign_keys:
        _run(conn, f"ALTER TABLE {table} ADD CONSTRAINT {name} {ddl}")
