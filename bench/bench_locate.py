"""Benchmark: gis.locate.locate_point (what intake previews and the API call) vs the raw LOCATE statement.

    .venv/bin/python bench/bench_locate.py [--n 3000]

Both run the same statement on the same points over one connection, in alternating blocks so that
load from other work on the machine hits both alike, in the same form: PREPAREd once, then EXECUTE with
no transaction open (gis/prepared.py). Target (issue 4): locate_point <= 1.2x raw.
"""
import argparse
import statistics
import sys
import time

from common import machine, percentile, sample_points, scratch_db

from sqlalchemy import create_engine, pool  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--block", type=int, default=100)
    args = parser.parse_args()
    from gis.locate import _LOCATE_STMT, locate_point
    print(f"# locate vs raw PostGIS — {machine()}")
    with scratch_db(with_requests=False) as url:
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.connect() as conn:
            points = sample_points(conn, args.n)
            conn.commit()
            conn.connection.driver_connection.autocommit = True   # no transaction open, on both sides
            cur = conn.connection.driver_connection.cursor()
            cur.execute(_LOCATE_STMT.prepare_sql.replace("pin311_locate", "bench_locate_raw"))
            raw_sql = _LOCATE_STMT.execute_sql.replace("pin311_locate", "bench_locate_raw")
            api, raw = [], []
            for p in points[:200]:                       # warm both: caches, plans
                locate_point(conn, *p)
                cur.execute(raw_sql, {"lat": p[0], "lon": p[1]})
                cur.fetchall()
            for start in range(0, len(points), args.block):
                block = points[start:start + args.block]
                for lat, lon in block:
                    t0 = time.perf_counter()
                    cur.execute(raw_sql, {"lat": lat, "lon": lon})
                    cur.fetchall()
                    raw.append((time.perf_counter() - t0) * 1000)
                for lat, lon in block:
                    t0 = time.perf_counter()
                    locate_point(conn, lat, lon)
                    api.append((time.perf_counter() - t0) * 1000)
            conn.rollback()
        engine.dispose()
    ratio_mean = statistics.fmean(api) / statistics.fmean(raw)
    ratio_p50 = statistics.median(api) / statistics.median(raw)
    print("both sides: the LOCATE statement PREPAREd once, EXECUTE with no transaction open")
    print(f"raw LOCATE (psycopg2 cursor): mean {statistics.fmean(raw):.3f} ms, p50 {statistics.median(raw):.3f} ms, "
          f"p99 {percentile(raw, 99):.3f} ms  ({1000 / statistics.fmean(raw):,.0f}/s, 1 client)")
    print(f"locate_point():               mean {statistics.fmean(api):.3f} ms, p50 {statistics.median(api):.3f} ms, "
          f"p99 {percentile(api, 99):.3f} ms  ({1000 / statistics.fmean(api):,.0f}/s, 1 client)")
    print(f"ratio locate_point / raw: mean {ratio_mean:.2f}x, p50 {ratio_p50:.2f}x  "
          f"(target <= 1.2x: {'met' if ratio_p50 <= 1.2 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
