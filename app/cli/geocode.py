"""`pin311 geocode IN.csv --address-field F --out OUT.csv`: geocode a file of addresses."""
import time
from collections import Counter

import click
from sqlalchemy import text
from tqdm import tqdm

from app.cli._files import echo_summary, read_rows, write_rows
from app.config import database_url
from gis import geocode as geocoder
from gis.db import engine_for
from gis.intake import PLACE_MIN_SCORE

ADDED = ("lat", "lon", "score", "match")
MATCH_ORDER = ("exact", "interpolated", "fuzzy", "intersection", "weak", "ambiguous", "no match")


@click.command("geocode")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--address-field", required=True, help="the column holding the address text")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="the CSV to write")
@click.option("--quiet", is_flag=True, help="no progress bar")
def group(path, address_field, out_path, quiet):
    """Add lat, lon, score and match to every row of PATH (empty where nothing matches).

    The whole file is matched set-based (gis.geocode.geocode_many): exact street + number, then
    interpolation, nearest number, similar streets and intersections, each one query for all rows,
    with the same answers as the single-address geocoder. An address whose best
    places tie (e.g. "100 Tremont St" without a neighbourhood) is left empty with match "ambiguous"; one
    whose best guess scores under the 0.5 intake requires to place a request is left empty with its score
    and match "weak" (a guess 2 km off must not land on a map as if found).
    """
    header, rows = read_rows(path, [address_field], ADDED)
    col = header.index(address_field)
    queries = [r[col] for r in rows]
    started = time.perf_counter()
    distinct = len({q.strip() for q in queries if q.strip()})
    with tqdm(total=distinct, desc="geocoding", unit="addr", disable=quiet, leave=False) as bar, \
            engine_for(database_url()).connect() as conn:
        conn.execute(text("SET LOCAL statement_timeout = '10min'"))   # a file, not a web request
        found = geocoder.geocode_many(conn, queries, progress=bar.update)
        conn.rollback()
    counts = Counter()
    out = []
    for row, cand in zip(rows, found):
        if cand is None:
            counts["no match"] += 1
            out.append(row + ["", "", "", ""])
        elif cand.lat is None or cand.score < PLACE_MIN_SCORE:
            match = cand.match if cand.lat is None else "weak"
            counts[match] += 1
            out.append(row + ["", "", f"{cand.score:g}", match])
        else:
            counts[cand.match] += 1
            out.append(row + [f"{cand.lat:.6f}", f"{cand.lon:.6f}", f"{cand.score:g}", cand.match])
    write_rows(out_path, header + list(ADDED), out)
    elapsed = time.perf_counter() - started
    echo_summary(f"geocoded {path} → {out_path}", [(k, counts[k]) for k in MATCH_ORDER if counts[k]],
                 len(rows), elapsed, "addresses")
