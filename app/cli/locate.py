"""`pin311 locate IN.csv --lat-field F --lon-field F --out OUT.csv`: parcel and districts for a file of points."""
import time
from collections import Counter

import click
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from app.cli._files import echo_summary, read_columns, write_columns
from app.config import database_url
from gis.db import engine_for
from gis.errors import InvalidInput
from gis.spatial_index import LayerIndex, checked

CHUNK = 200_000
PLAIN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"     # a decimal number, as pyarrow's cast reads it


def _numbers(values):
    """float array of a string array; '' or text that is not a number → NaN (a bad row, never an error).

    Plain decimals are read by pyarrow, correctly rounded as float() reads them (and so the single-point
    path; pandas was off by a few units in the last place for some with 17 or more digits); anything else
    ('', 'north', ' 42.1') by pandas' lenient reading, as before."""
    try:
        return pc.cast(values, pa.float64()).to_numpy()      # the usual file: every value a plain number
    except pa.ArrowInvalid:
        pass
    plain = pc.match_substring_regex(values, PLAIN)
    out = pc.cast(pc.if_else(plain, values, None), pa.float64()).to_numpy(zero_copy_only=False)
    rest = np.flatnonzero(~plain.to_numpy(zero_copy_only=False))
    text = pd.Series(values.take(rest).to_numpy(zero_copy_only=False), dtype=object)
    out[rest] = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    return out


@click.command("locate")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--lat-field", required=True, help="the column holding latitude (WGS84 degrees)")
@click.option("--lon-field", required=True, help="the column holding longitude (WGS84 degrees)")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="the CSV to write")
@click.option("--quiet", is_flag=True, help="no progress bar")
def group(path, lat_field, lon_field, out_path, quiet):
    """Add parcel_id and one column per district layer (named as the layer, holding its code) to PATH.

    The layers are read once into Shapely STRtrees (gis.spatial_index) and every point is placed in
    memory with the same rules as the single-point SQL; rows without a usable point, or outside the
    city, get empty columns and are counted in the summary.
    """
    started = time.perf_counter()
    with engine_for(database_url()).connect() as conn:
        index = LayerIndex(conn)
    layers = index.layer_names
    if not layers:
        raise InvalidInput("no district layers are loaded (try `pin311 demo load`)")
    header, columns = read_columns(path, [lat_field, lon_field], ["parcel_id", *layers])
    n = len(columns[0])
    lats = _numbers(columns[header.index(lat_field)])
    lons = _numbers(columns[header.index(lon_field)])
    counts = Counter()
    bad = ~checked(lons, lats)[2]     # the same test locate() makes: finite and within range
    counts["no usable point"] = int(bad.sum())
    found = {"parcel_id": np.full(n, None, object), **{layer: np.full(n, None, object) for layer in layers}}
    with tqdm(total=n, desc="locating", unit="pt", disable=quiet, leave=False) as bar:
        for start in range(0, n, CHUNK):
            part = slice(start, start + CHUNK)
            where = index.locate(lons[part], lats[part])
            outside = ~where["inside"] & ~bad[part]
            counts["outside the city"] += int(outside.sum())
            for name, col in found.items():
                col[part] = np.where(where["inside"], where[name], None)
            bar.update(len(where["inside"]))
    counts["located"] = n - counts["no usable point"] - counts["outside the city"]
    names = ["parcel_id", *layers]
    added = [pa.array(found[name], pa.string()) for name in names]     # None → null, written as ''
    counts["in a parcel"] = n - added[0].null_count
    write_columns(out_path, header + names, columns + added)
    order = ("located", "in a parcel", "outside the city", "no usable point")
    echo_summary(f"located {path} → {out_path}", [(k, counts[k]) for k in order],
                 n, time.perf_counter() - started, "points")
