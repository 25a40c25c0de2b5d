"""Shared by the demo-city build scripts: paths, constants and deterministic output helpers."""
import gzip
import re
import tempfile
from pathlib import Path

import numpy as np
import pyogrio
import shapely


HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data" / "boston"
CITY_HALL = (42.3594, -71.0587)       # Boston's default point for cases with no real location
METRIC = 26986                        # NAD83 / Massachusetts Mainland (metres), for areas
STATE_PLANE_FT = 2249                 # what precincts/neighborhoods really are (they claim EPSG:4326)
SLIVER_M2 = 1000                      # boundary parts and holes smaller than this are artefacts
SAMPLE_REQUESTS = 15_000
MIN_PER_TYPE = 25                     # every catalogue category shows up on the demo map
SEED = 311
DATE_FMT = "%m/%d/%Y %I:%M:%S %p"


def say(message):
    print(f"[build_demo] {message}", flush=True)


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


# ----------------------------------------------------------------------------------------------------------------
# Output helpers (deterministic bytes: no timestamps in gzip headers, stable ordering)

def _gzip_bytes(path, data):
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9,
                                                mtime=0) as gz:
        gz.write(data)


def _snap(gdf):
    """Coordinates on a 1e-6 degree grid (≈ 0.1 m), valid polygons, nothing empty."""
    out = gdf.copy()
    geom = shapely.set_precision(out.geometry.values, 1e-6, mode="valid_output")
    geom = shapely.make_valid(geom)
    # make_valid can leave GeometryCollections (polygon + stray line): keep the polygonal part
    geom = np.array([g if g.geom_type in ("Polygon", "MultiPolygon")
                     else shapely.unary_union([p for p in getattr(g, "geoms", []) if p.geom_type in
                                               ("Polygon", "MultiPolygon")]) for g in geom], dtype=object)
    out["geometry"] = geom
    return out[~out.geometry.is_empty & out.geometry.notna()]


def _geojson_bytes(gdf, layer_name):
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / f"{layer_name}.geojson"
        pyogrio.write_dataframe(gdf, tmp_path, driver="GeoJSON", layer=layer_name,
                                layer_options={"COORDINATE_PRECISION": 6, "RFC7946": "YES", "WRITE_NAME": "YES"})
        return tmp_path.read_bytes()


def write_geojson(gdf, name, gz=False):
    path = HERE / name
    data = _geojson_bytes(_snap(gdf), name.split(".")[0])
    if gz:
        _gzip_bytes(path, data)
    else:
        path.write_bytes(data)
    say(f"{name}: {len(gdf)} features, {path.stat().st_size / 1e6:.2f} MB")


def write_csv(df, name, gz=False):
    path = HERE / name
    text = df.to_csv(index=False, lineterminator="\n")
    if gz:
        _gzip_bytes(path, text.encode("utf-8"))
    else:
        path.write_text(text, encoding="utf-8")
    say(f"{name}: {len(df)} rows, {path.stat().st_size / 1e6:.2f} MB")


def area_km2(gdf):
    return gdf.geometry.to_crs(METRIC).area.div(1e6).round(3)
