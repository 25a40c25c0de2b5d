"""Benchmark: where a bulk-loaded request's time goes — Python, and PostgreSQL's insert with what the live table keeps.

    .venv/bin/python bench/bench_bulk_cost.py [--file PATH]

Loads Boston's illegal-parking Open311 file (141k records) in-process with gis.bulk.import_requests,
timing the PostgreSQL statements apart from the rest. Then the same rows are inserted again, each time
in a transaction that is rolled back, into:
  1. a bare copy of service_requests (same columns and defaults; no index, constraint or trigger) — the baseline;
  2. that copy with the live table's indexes;
  3. service_requests itself (indexes, foreign keys, the triggers left under the bulk flag) — fresh ids;
  4. the same as the import does it: service_requests with each row's events (the import's INSERT … SELECT).
Each is printed in microseconds per request and as a ratio to the bare insert. The issue's target,
100,000 requests/s end to end, is 10 µs per request all told.
"""
import argparse
import os
import re
import sys
import time

from sqlalchemy import create_engine, event, pool, text

from common import ROOT, machine, scratch_db

FILE = ROOT.parent / "shared" / "data" / "boston" / "open311_georeport_v2" / "illegal_parking.jsonl.gz"
COLUMNS = ("service_code, sensitive, status, closure_reason, description, geom, address, parcel_id, districts, "
           "crew_id, routed_by, channel, requested_at, updated_at, expected_at, closed_at")


def timed_import(url, path):
    """The import in-process; (rows loaded, wall seconds, seconds inside PostgreSQL statements)."""
    from gis import bulk
    engine = create_engine(url, poolclass=pool.NullPool)
    in_db = [0.0]
    started = {}

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, params, context, many):
        started[id(cursor)] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, params, context, many):
        in_db[0] += time.perf_counter() - started.pop(id(cursor))

    t0 = time.perf_counter()
    report = bulk.import_requests(engine, path, "open311-json", service_code="abandoned-vehicle", progress=False)
    wall = time.perf_counter() - t0
    engine.dispose()
    return report, wall, in_db[0]


def rolled_back(engine, *statements):
    """Seconds the last statement took (the others prepare it), in a transaction that is then rolled back."""
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text("SET LOCAL pin311.bulk = 'on'"))
        for sql in statements[:-1]:
            conn.execute(text(sql))
        t0 = time.perf_counter()
        conn.execute(text(statements[-1]))
        elapsed = time.perf_counter() - t0
        conn.rollback()
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default=str(FILE))
    args = parser.parse_args()
    print(f"# bulk load, cost per request — {machine()}")
    # Its own database even under `make bench`: the shared one may hold these requests already (bench_batch).
    os.environ.pop("BENCH_DATABASE_URL", None)
    with scratch_db(with_requests=False) as url:
        report, wall, in_db = timed_import(url, args.file)
        n = report.loaded
        if not n:
            sys.exit("nothing was loaded: the database already held these requests")
        print(f"import in-process: {n:,} requests loaded in {wall:.2f} s = {n / wall:,.0f}/s; "
              f"{in_db / n * 1e6:.1f} µs per request inside SQL statements (COPY not included), "
              f"{(wall - in_db) / n * 1e6:.1f} µs outside")
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE bench_rows AS SELECT public_id, " + COLUMNS + " FROM service_requests"))
            conn.execute(text("CREATE TABLE bench_bare (LIKE service_requests INCLUDING DEFAULTS)"))
            indexes = conn.execute(text("SELECT pg_get_indexdef(indexrelid) FROM pg_index "
                                        "WHERE indrelid = 'service_requests'::regclass")).scalars().all()
        into = "INSERT INTO {table} (public_id, " + COLUMNS + ") SELECT public_id || '-b', " + COLUMNS + \
               " FROM bench_rows"
        bare = rolled_back(engine, into.format(table="bench_bare"))
        # The live table's indexes, renamed, on the copy (the copy has the same columns).
        make_indexes = [re.sub(r"^CREATE (UNIQUE )?INDEX (\w+) ON public\.service_requests ",
                               r"CREATE \1INDEX bench_\2 ON bench_bare ", ddl) for ddl in indexes]
        indexed = rolled_back(engine, *make_indexes, into.format(table="bench_bare"))
        live = rolled_back(engine, into.format(table="service_requests"))
        with_events = rolled_back(engine, f"""
            WITH ins AS ({into.format(table="service_requests")} RETURNING id, status, requested_at, closed_at)
            INSERT INTO request_events (request_id, kind, status, public_note, actor, at)
            SELECT ins.id, e.kind, e.status, 'Request received', 'import', e.at FROM ins CROSS JOIN LATERAL (VALUES
                   ('created', 'open', ins.requested_at), ('closed', 'closed', ins.closed_at)) e (kind, status, at)
             WHERE e.kind = 'created' OR ins.status = 'closed'""")
        engine.dispose()
    print(f"the same {n:,} rows inserted again (INSERT … SELECT, rolled back), µs per request:")
    for label, seconds in (("bare copy of the table (baseline)", bare),
                           (f"bare copy + the live table's {len(indexes)} indexes", indexed),
                           ("service_requests (indexes, foreign keys, bulk-flag triggers)", live),
                           ("service_requests + its events, as the import writes them", with_events)):
        print(f"  {label:<62} {seconds / n * 1e6:7.1f} µs  {seconds / bare:5.1f}× bare")
    print(f"target 100,000 requests/s end to end = 10.0 µs per request; the import took {wall / n * 1e6:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
