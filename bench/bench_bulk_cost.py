"""Benchmark: where a bulk-loaded request's time goes — Python, and PostgreSQL's insert with what the live table keeps.

    .venv/bin/python bench/bench_bulk_cost.py [--file PATH]

Loads Boston's illegal-parking Open311 file (141k records) in-process with gis.bulk.import_requests into
two copies of an empty demo city, once as a large load (indexes, keys and foreign keys dropped and made
again, what --rebuild-indexes auto does there) and once with them live (--rebuild-indexes no), each with
its wall time and the CPU time of the Python process and of its PostgreSQL backend (the two overlap: a
loader thread runs the server's part of one chunk while Python prepares the next). Then the same rows are
inserted again, each time in a transaction that is rolled back, into:
  1. a bare copy of service_requests (same columns and defaults; no index, constraint or trigger) — the baseline;
  2. that copy with the live table's indexes;
  3. service_requests itself (indexes, foreign keys, the triggers left under the bulk flag) — fresh ids;
  4. the same as the import does it: service_requests with each row's events (the import's INSERT … SELECT);
  5. 4 as a large load: indexes, keys and foreign keys set aside, the insert, all of them made again.
Each is printed in microseconds per request and as a ratio to the bare insert. The issue's target,
100,000 requests/s end to end, is 10 µs per request all told.
"""
import argparse
import os
import re
import sys
import time

from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from common import ROOT, machine, scratch_db

FILE = ROOT.parent / "shared" / "data" / "boston" / "open311_georeport_v2" / "illegal_parking.jsonl.gz"
COLUMNS = ("service_code, sensitive, status, closure_reason, description, geom, address, parcel_id, districts, "
           "crew_id, routed_by, channel, requested_at, updated_at, expected_at, closed_at")


def _backend_cpu(pid):
    """CPU seconds a PostgreSQL backend has used (its /proc entry: the cluster runs on this machine), or None."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_import(url, path, rebuild_indexes):
    """The import in-process; (report, wall seconds, Python CPU seconds, backend CPU seconds or None)."""
    from gis import bulk
    engine = create_engine(url, poolclass=pool.StaticPool)     # one connection: the import's backend
    with engine.connect() as conn:
        pid = conn.scalar(text("SELECT pg_backend_pid()"))
    cpu0, backend0, t0 = time.process_time(), _backend_cpu(pid), time.perf_counter()
    report = bulk.import_requests(engine, path, "open311-json", service_code="abandoned-vehicle", progress=False,
                                  rebuild_indexes=rebuild_indexes)
    wall, cpu, backend1 = time.perf_counter() - t0, time.process_time() - cpu0, _backend_cpu(pid)
    engine.dispose()
    return report, wall, cpu, (backend1 - backend0) if backend0 is not None and backend1 is not None else None


def clone(url, name):
    """A copy of the database at url (CREATE DATABASE … TEMPLATE); its URL."""
    base = make_url(url)
    admin = create_engine(base.set(database="postgres"), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{base.database}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def drop(url):
    base = make_url(url)
    admin = create_engine(base.set(database="postgres"), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{base.database}" WITH (FORCE)'))
    admin.dispose()


def large_load_insert(engine, insert):
    """Seconds for `insert` as a large load does it (set aside, insert, made again), rolled back."""
    from gis import bulk_indexes
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text("SET LOCAL pin311.bulk = 'on'"))
        t0 = time.perf_counter()
        bulk_indexes.lock(conn)
        aside = bulk_indexes.set_aside(conn)
        conn.execute(text(insert))
        bulk_indexes.restore(conn, aside)
        elapsed = time.perf_counter() - t0
        conn.rollback()
    return elapsed


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
        live_url = clone(url, f"pin311_bench_live_{os.getpid()}")
        try:
            walls = {}
            for label, mode, into in (("large load", "yes", url), ("live indexes", "no", live_url)):
                report, wall, cpu, backend = timed_import(into, args.file, mode)
                walls[label] = wall
                n = report.loaded
                if not n:
                    sys.exit("nothing was loaded: the database already held these requests")
                server = (f"PostgreSQL backend {backend / n * 1e6:.1f} µs" if backend is not None
                          else "backend CPU unknown")
                print(f"import in-process, {label:<12}: {n:,} requests loaded in {wall:.2f} s = {n / wall:,.0f}/s, "
                      f"{wall / n * 1e6:.1f} µs per request wall; CPU per request: Python {cpu / n * 1e6:.1f} µs, "
                      f"{server}")
        finally:
            drop(live_url)
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
        as_import = f"""
            WITH ins AS ({into.format(table="service_requests")} RETURNING id, status, requested_at, closed_at)
            INSERT INTO request_events (request_id, kind, status, public_note, actor, at)
            SELECT ins.id, e.kind, e.status, 'Request received', 'import', e.at FROM ins CROSS JOIN LATERAL (VALUES
                   ('created', 'open', ins.requested_at), ('closed', 'closed', ins.closed_at)) e (kind, status, at)
             WHERE e.kind = 'created' OR ins.status = 'closed'"""
        with_events = rolled_back(engine, as_import)
        large = large_load_insert(engine, as_import)
        engine.dispose()
    print(f"the same {n:,} rows inserted again (INSERT … SELECT, rolled back), µs per request:")
    for label, seconds in (("bare copy of the table (baseline)", bare),
                           (f"bare copy + the live table's {len(indexes)} indexes", indexed),
                           ("service_requests (indexes, foreign keys, bulk-flag triggers)", live),
                           ("service_requests + its events, as the import writes them", with_events),
                           ("4 as a large load (set aside, insert, made again; table held as many)", large)):
        print(f"  {label:<72} {seconds / n * 1e6:7.1f} µs  {seconds / bare:5.1f}× bare")
    print("target 100,000 requests/s end to end = 10.0 µs per request; the import took "
          + ", ".join(f"{wall / n * 1e6:.1f} µs ({label})" for label, wall in walls.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
