"""Large loads without live index upkeep: the loaded tables' indexes and keys are set aside inside the
load's transaction and made again from their catalog definitions before it commits, as pg_restore and
pgloader do.

Set aside, for service_requests and request_events: every valid index (GiST and B-tree), their primary
key, unique and exclusion constraints, the foreign keys declared on them (to crews, services, and
request_events → service_requests) and the foreign keys of other tables that reference them (contacts,
sweep_requests, notifications, duplicate_of). Made again in that order — keys, indexes, foreign keys —
under the same names from pg_get_constraintdef / pg_get_indexdef, so migrations stay the one source of
the schema. Re-adding a key checks uniqueness over the whole table and re-adding a foreign key checks
every row of its table in one join, so the constraints hold exactly as before. Stay live: check and
not-null constraints (they cost nothing worth saving), a key a view depends on (it cannot be dropped),
invalid indexes (a failed CREATE INDEX CONCURRENTLY).

Every table whose constraints are dropped, and the tables the foreign keys point to (services, crews),
are locked (ACCESS EXCLUSIVE, one LOCK statement, referenced tables first) before anything is dropped, in
the same transaction: no other session ever sees a table without its indexes or keys — readers and
writers of requests, and of the catalogue, wait for the commit instead — and a failure anywhere rolls
the drops back with the load.
"""
from dataclasses import dataclass

from sqlalchemy import exc, text

from gis.errors import InvalidInput

LOADED_TABLES = ("service_requests", "request_events")
# Auto mode rebuilds when the rows to load are at least this many and at least as many as the table holds:
# keeping the indexes, keys and foreign keys live costs ~40 µs of server CPU per loaded request more
# (bench/RESULTS.md, 2026-12-07), the rebuild ~13 µs per request in the table after the load, and the lock
# it needs holds everyone else back for the load's duration, which on a table much larger than the load
# would be mostly rebuild.
LARGE_LOAD_MIN_ROWS = 10_000
MODES = ("auto", "yes", "no")
# Sorting for the index builds in memory: the server's default (often 64 MB) spills large builds to disk.
MAINTENANCE_WORK_MEM = "1GB"
# How long 'auto' waits for the lock before loading with live indexes instead: a waiting ACCESS EXCLUSIVE
# request queues every later reader behind it, so it must not wait long for a mere speed-up.
AUTO_LOCK_WAIT = "1s"


@dataclass
class SetAside:
    keys: list             # (table, constraint name, definition): primary key, unique, exclusion
    indexes: list          # (name, CREATE INDEX statement)
    foreign_keys: list     # (table, constraint name, definition)


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


_CONSTRAINT = ("SELECT CAST(c.conrelid AS regclass)::text AS tbl, quote_ident(c.conname) AS name, "
               "pg_get_constraintdef(c.oid) AS ddl FROM pg_constraint c ")
# A key a view leans on (GROUP BY the primary key, selecting other columns) cannot be dropped: it stays live.
_KEYS = text(_CONSTRAINT + """
 WHERE c.contype IN ('p', 'u', 'x') AND c.conrelid = ANY (CAST(:tables AS regclass[]))
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_constraint'::regclass
                                               AND d.refobjid = c.oid AND d.classid = 'pg_rewrite'::regclass)
 ORDER BY c.conrelid, c.conname""")
_FOREIGN_KEYS = text(_CONSTRAINT + """
 WHERE c.contype = 'f' AND (c.conrelid = ANY (CAST(:tables AS regclass[]))
                            OR c.confrelid = ANY (CAST(:tables AS regclass[])))
 ORDER BY c.conrelid, c.conname""")
_INDEXES = text("""
SELECT quote_ident(ns.nspname) || '.' || quote_ident(ic.relname) AS name, pg_get_indexdef(i.indexrelid) AS ddl
  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace ns ON ns.oid = ic.relnamespace
 WHERE i.indrelid = ANY (CAST(:tables AS regclass[])) AND i.indisvalid
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                                                   AND c.contype IN ('p', 'u', 'x'))
 ORDER BY ic.relname""")
_REFERENCED = text("""SELECT DISTINCT CAST(confrelid AS regclass)::text FROM pg_constraint
                         WHERE contype = 'f' AND conrelid = ANY (CAST(:tables AS regclass[])) ORDER BY 1""")
_REFERENCING = text("""SELECT DISTINCT CAST(conrelid AS regclass)::text FROM pg_constraint
                          WHERE contype = 'f' AND confrelid = ANY (CAST(:tables AS regclass[])) ORDER BY 1""")


def lock(conn, required=True, tables=LOADED_TABLES):
    """Lock the tables, the tables their foreign keys point to and those whose foreign keys point to them
    (in that order: the order intake takes them in). Waits up to the session's lock_timeout when `required`
    (then a clear error), up to AUTO_LOCK_WAIT otherwise (then False: nothing locked, load live)."""
    params = {"tables": list(tables)}
    referenced = [t for t in conn.execute(_REFERENCED, params).scalars() if t not in tables]
    referencing = [t for t in conn.execute(_REFERENCING, params).scalars() if t not in tables + tuple(referenced)]
    waited = conn.scalar(text("SELECT current_setting('lock_timeout')"))
    try:
        with conn.begin_nested():        # a lock timeout (or deadlock) rolls back to here, not the import
            if not required:
                conn.execute(text(f"SET LOCAL lock_timeout = '{AUTO_LOCK_WAIT}'"))   # undone below
            conn.execute(text(f"LOCK TABLE {', '.join(referenced + list(tables) + referencing)} "
                              "IN ACCESS EXCLUSIVE MODE"))
    except exc.OperationalError as error:
        if not required:
            return False
        raise InvalidInput(f"could not lock {', '.join(tables)} for a load with rebuilt indexes (other sessions "
                           f"are using them: {str(error.orig).strip().splitlines()[0]}); try again, or load with "
                           "--rebuild-indexes no (slower, the tables stay in use)") from None
    conn.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": waited})
    return True


def set_aside(conn, tables=LOADED_TABLES):
    """Drop what the module docstring lists (the tables locked by lock() first); returns what restore()
    makes again."""
    params = {"tables": list(tables)}
    conn.execute(text(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'"))
    aside = SetAside(conn.execute(_KEYS, params).all(), conn.execute(_INDEXES, params).all(),
                     conn.execute(_FOREIGN_KEYS, params).all())
    for table, name, _ in aside.foreign_keys + aside.keys:       # foreign keys first: they need the keys
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
    """Make again what set_aside() dropped: keys (each checks its table's rows are unique), indexes, then
    foreign keys (each checks every row of its table)."""
    for table, name, ddl in aside.keys:
        _run(conn, f"ALTER TABLE {table} ADD CONSTRAINT {name} {ddl}")
    for _, ddl in aside.indexes:
        _run(conn, ddl)
    for table, name, ddl in aside.foreign_keys:
        _run(conn, f"ALTER TABLE {table} ADD CONSTRAINT {name} {ddl}")
