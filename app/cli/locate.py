"""`pin311 locate IN.csv --lat-field F --lon-field F --out OUT.csv`: parcel and districts for a file of points."""
import time
from collections import Counter

import click
import numpy as np
import pandas as pd
from tqdm import tqdm

from app.cli._files import echo_summary, read_rows, write_rows
from app.config import database_url
from gis.db import engine_for
from gis.errors import InvalidInput
from gis.spatial_index import LayerIndex

CHUNK = 200_000


def _numbers(values):
    """float array; '' or text that is not a number → NaN (counted as a bad row, never an error)."""
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)


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
    header, rows = read_rows(path, [lat_field, lon_field], ["parcel_id", *layers])
    lat_i, lon_i = header.index(lat_field), header.index(lon_field)
    lats = _numbers([r[lat_i] for r in rows])
    lons = _numbers([r[lon_i] for r in rows])
    counts = Counter()
    bad = ~(np.isfinite(lats) & np.isfinite(lons) & (np.abs(lats) <= 90) & (np.abs(lons) <= 180))
    counts["no usable point"] = int(bad.sum())
    columns = {"parcel_id": np.full(len(rows), None, object),
               **{layer: np.full(len(rows), None, object) for layer in layers}}
    with tqdm(total=len(rows), desc="locating", unit="pt", disable=quiet, leave=False) as bar:
        for start in range(0, len(rows), CHUNK):
            part = slice(start, start + CHUNK)
            where = index.locate(lons[part], lats[part])
            outside = ~where["inside"] & ~bad[part]
            counts["outside the city"] += int(outside.sum())
            for name, col in columns.items():
                col[part] = np.where(where["inside"], where[name], None)
            bar.update(len(where["inside"]))
    counts["located"] = len(rows) - counts["no usable point"] - counts["outside the city"]
    counts["in a parcel"] = int(sum(v is not None for v in columns["parcel_id"]))
    names = ["parcel_id", *layers]
    extra = [np.where(columns[n] == None, "", columns[n]) for n in names]  # noqa: E711
    write_rows(out_path, header + names, rows, extra)
    order = ("located", "in a parcel", "outside the city", "no usable point")
    echo_summary(f"located {path} → {out_path}", [(k, counts[k]) for k in order],
                 len(rows), time.perf_counter() - started, "points")
