"""`make bench`: every benchmark of the intake core, each printing ratios measured in one run.

    .venv/bin/python bench/run.py [--quick]

One scratch database with the demo city is built for the intake benchmarks (BENCH_DATABASE_URL) and
dropped at the end; the tile and KNN benchmarks build their own. Each is bounded (a minute or two)
and uses loopback only; `--only NAME` runs one. Record what you measure
in bench/RESULTS.md with the machine line each benchmark prints.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import scratch_db  # noqa: E402

BENCHES = (
    ("bench_intake_http.py", ["--seconds", "15"], ["--seconds", "5"]),
    ("bench_locate.py", ["--n", "3000"], ["--n", "1000"]),
    ("bench_locate_http.py", ["--n", "1000"], ["--n", "300"]),
    ("bench_batch.py", ["--points", "1000000", "--addresses", "20000"], ["--points", "200000", "--addresses", "3000"]),
    ("bench_bulk_cost.py", [], []),
    # Other issues' benchmarks build scratch databases of their own (millions of rows).
    ("bench_tiles.py", [], ["--requests", "100000", "--seconds", "3", "--rounds", "1"]),
    ("bench_knn.py", [], ["--rows", "500000", "--n", "300"]),
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the benchmarks)")
    parser.add_argument("--only", help="run only benchmarks whose file name contains this")
    args = parser.parse_args()
    failed = []
    with scratch_db(with_requests=True) as url:
        env = {**os.environ, "BENCH_DATABASE_URL": url, "DATABASE_URL": url}
        for script, full, quick in BENCHES:
            if args.only and args.only not in script:
                continue
            if not (HERE / script).exists():
                continue
            print(f"\n=== {script} ===", flush=True)
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, str(HERE / script), *(quick if args.quick else full)],
                                  cwd=HERE, env=env, timeout=900)
            print(f"({script}: {time.perf_counter() - t0:.0f} s)", flush=True)
            if done.returncode:
                failed.append(script)
    if failed:
        print(f"\nbenchmarks that failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
