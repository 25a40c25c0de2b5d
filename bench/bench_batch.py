"""Benchmark: the batch commands end to end, as a user runs them (`pin311 …` in a subprocess).

    .venv/bin/python bench/bench_batch.py [--points 1000000] [--addresses 20000]

- `pin311 geocode`: 2015 case addresses as the City wrote them (mostly exact: the set-based join) and
  Open311 address strings as residents wrote them (a third need the one-by-one fuzzy/intersection path);
- `pin311 locate`: a file of points (the 2015 case points, jittered and repeated to --points rows);
- `pin311 requests import`: Boston's illegal-parking Open311 file (141k records).
The rate of each is wall time of the whole command (start-up, reading, writing included); the
command's own summary line is printed too. Targets (issue 4): geocode >= 2,000 addresses/s,
locate >= 100,000 points/s, bulk import >= 100,000 requests/s.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import ROOT, machine, scratch_db

SHARED = ROOT.parent / "shared" / "data" / "boston"
PIN311 = str(Path(sys.executable).with_name("pin311"))


def run(url, *args):
    t0 = time.perf_counter()
    done = subprocess.run([PIN311, *args, "--quiet"], capture_output=True, text=True,
                          env={**os.environ, "DATABASE_URL": url}, timeout=600)
    elapsed = time.perf_counter() - t0
    if done.returncode:
        sys.exit(f"pin311 {' '.join(args)} failed: {done.stderr}")
    return elapsed, done.stdout


def cases():
    files = sorted(glob.glob(str(SHARED / "311_cases_2015_by_type" / "*.csv")))
    return pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False,
                                  usecols=["Location", "Property_Type", "LATITUDE", "LONGITUDE"]) for f in files])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--addresses", type=int, default=20_000)
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"needs the shared Boston data at {SHARED}")
    print(f"# batch commands — {machine()}")
    df = cases()
    tmp = Path(tempfile.mkdtemp(prefix="pin311-bench-"))
    rng = np.random.default_rng(311)
    addresses = df.loc[df["Property_Type"] == "Address", "Location"].drop_duplicates()
    addresses = addresses.sample(min(args.addresses, len(addresses)), random_state=1)
    pd.DataFrame({"address": addresses}).to_csv(tmp / "addr2015.csv", index=False)
    open311 = pd.read_json(SHARED / "open311_georeport_v2" / "abandoned_vehicle.jsonl.gz", lines=True, dtype=False)
    sample = open311["address"].dropna().drop_duplicates().sample(5000, random_state=2)
    pd.DataFrame({"address": sample}).to_csv(tmp / "addr_open311.csv", index=False)
    pts = df[["LATITUDE", "LONGITUDE"]].apply(pd.to_numeric, errors="coerce").dropna()
    reps = int(np.ceil(args.points / len(pts)))
    lat = np.tile(pts["LATITUDE"].to_numpy(), reps)[:args.points] + rng.uniform(-3e-4, 3e-4, args.points)
    lon = np.tile(pts["LONGITUDE"].to_numpy(), reps)[:args.points] + rng.uniform(-3e-4, 3e-4, args.points)
    pd.DataFrame({"id": np.arange(args.points), "lat": lat.round(6), "lon": lon.round(6)}).to_csv(
        tmp / "points.csv", index=False)
    try:
        with scratch_db(with_requests=False) as url:
            for name, label in (("addr2015.csv", "2015 case addresses (as the City wrote them)"),
                                ("addr_open311.csv", "Open311 address strings (as residents wrote them)")):
                n = len(pd.read_csv(tmp / name))
                elapsed, out = run(url, "geocode", str(tmp / name), "--address-field", "address",
                                   "--out", str(tmp / ("geo_" + name)))
                print(f"pin311 geocode, {n:,} {label}: {n / elapsed:,.0f} addresses/s "
                      f"(wall {elapsed:.1f} s, target 2,000/s: {'met' if n / elapsed >= 2000 else 'MISSED'})")
                print("   " + out.strip().replace("\n", "\n   "))
            elapsed, out = run(url, "locate", str(tmp / "points.csv"), "--lat-field", "lat", "--lon-field", "lon",
                               "--out", str(tmp / "located.csv"))
            met = "met" if args.points / elapsed >= 100_000 else "MISSED"
            print(f"pin311 locate, {args.points:,} points: {args.points / elapsed:,.0f} points/s "
                  f"(wall {elapsed:.1f} s, target 100,000/s: {met})")
            print("   " + out.strip().replace("\n", "\n   "))
            big = SHARED / "open311_georeport_v2" / "illegal_parking.jsonl.gz"
            elapsed, out = run(url, "requests", "import", str(big), "--service", "abandoned-vehicle")
            read = 141_044
            print(f"pin311 requests import, {read:,} Open311 records: {read / elapsed:,.0f} requests/s "
                  f"(wall {elapsed:.1f} s, target 100,000/s: {'met' if read / elapsed >= 100_000 else 'MISSED'})")
            print("   " + out.strip().replace("\n", "\n   "))
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
