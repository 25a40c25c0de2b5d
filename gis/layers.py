"""Import any vector file GDAL reads into a named layer, replacing the old one atomically.

The file is read with pyogrio, reprojected to EPSG:4326, repaired (shapely.make_valid), checked
for its kind, and written with COPY in the same transaction that deletes the previous version of the
layer: readers see the old layer until the commit, then the new one, never a half-loaded layer.
"""
import io
import json
import math
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from sqlalchemy import text
from tqdm import tqdm

from gis import address as addr
from gis.errors import LayerImportError
from gis.models import LAYER_KINDS, SRID

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
POLYGONAL = {"boundary", "district", "parcel"}
TABLE = {"boundary": "districts", "district": "districts", "parcel": "parcels", "address": "address_points"}
DEFAULT_CODE_FIELD = {"district": "code", "boundary": "code", "parcel": "parcel_id", "address": "address"}
CHUNK = 5000


@dataclass
class ImportReport:
    layer: str
    kind: str
    loaded: int = 0
    skipped: Counter = field(default_factory=Counter)
    source_crs: str = ""
    fields: list = field(default_factory=list)

    def summary(self):
        lines = [f"layer {self.layer!r} ({self.kind}): loaded {self.loaded:,} features from {self.source_crs}"]
        for reason, count in self.skipped.most_common():
            lines.append(f"  skipped {count:,}: {reason}")
        if not self.skipped:
            lines.append("  skipped none")
        return "\n".join(lines)


def _resolve_path(path):
    """Accept plain paths, GDAL virtual paths, and zips holding a shapefile in a sub-folder."""
    path = str(path)
    if path.startswith("/vsi"):
        return path
    p = Path(path)
    if not p.exists():
        raise LayerImportError(f"no such file: {path}")
    if p.suffix.lower() == ".zip":
        try:
            names = zipfile.ZipFile(p).namelist()
        except zipfile.BadZipFile:
            raise LayerImportError(f"{path} is not a valid zip file") from None
        shps = [n for n in names if n.lower().endswith((".shp", ".gpkg", ".geojson", ".json"))]
        if not shps:
            raise LayerImportError(f"{path} holds no shapefile, GeoPackage or GeoJSON")
        return f"/vsizip/{p.resolve()}/{shps[0]}"
    if p.name.lower().endswith(".gz") and not p.name.lower().endswith(".csv.gz"):
        return f"/vsigzip/{p.resolve()}"
    return str(p)


def read_vector(path, source_crs=None, lat_field=None, lon_field=None):
    """Read a vector file (or a CSV with lat/lon columns): (GeoDataFrame in EPSG:4326, source EPSG code)."""
    import geopandas as gpd
    resolved = _resolve_path(path)
    lower = resolved.lower()
    try:
        if lower.endswith((".csv", ".csv.gz")):
            df = pd.read_csv(resolved, dtype=str, keep_default_na=False)
            lat_field = lat_field or next((c for c in df.columns if c.lower() in ("lat", "latitude", "y")), None)
            lon_field = lon_field or next((c for c in df.columns if c.lower() in ("lon", "long", "longitude", "x")),
                                          None)
            if not lat_field or not lon_field:
                raise LayerImportError(f"{path}: a CSV needs lat/lon columns (found {', '.join(df.columns)})")
            lat = pd.to_numeric(df[lat_field], errors="coerce")
            lon = pd.to_numeric(df[lon_field], errors="coerce")
            gdf = gpd.GeoDataFrame(df.drop(columns=[lat_field, lon_field]),
                                   geometry=gpd.points_from_xy(lon, lat), crs=source_crs or SRID)
        else:
            gdf = pyogrio.read_dataframe(resolved)
    except LayerImportError:
        raise
    except Exception as exc:  # noqa: BLE001 - GDAL's own message is the useful part
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LayerImportError(f"cannot read {path} as a vector file: {message}") from None
    if source_crs:
        try:
            gdf = gdf.set_crs(CRS.from_user_input(_crs_input(source_crs)), allow_override=True)
        except CRSError as exc:
            raise LayerImportError(f"unknown source CRS {source_crs!r}: {exc}") from None
    if gdf.crs is None:
        raise LayerImportError(f"{path} does not say its coordinate reference system; "
                               "pass --source-crs EPSG:NNNN")
    if gdf.crs.to_epsg() == SRID and len(gdf):
        minx, miny, maxx, maxy = gdf.total_bounds
        if not (-180.5 <= minx <= 180.5 and -180.5 <= maxx <= 180.5 and -90.5 <= miny <= 90.5
                and -90.5 <= maxy <= 90.5):
            raise LayerImportError(
                f"{path} says EPSG:4326 but its coordinates ({minx:.0f}, {miny:.0f} … {maxx:.0f}, {maxy:.0f}) "
                "are not degrees: pass the real CRS with --source-crs (e.g. EPSG:2249 for Massachusetts "
                "State Plane feet)")
    return gdf.to_crs(SRID), gdf.crs.to_epsg()


def _crs_input(value):
    value = str(value).strip()
    return f"EPSG:{value}" if value.isdigit() else value


def _repair(geoms, kind, report):
    """make_valid, keep the parts of the right dimension, promote to Multi; None where unusable."""
    out = []
    for geom in geoms:
        if geom is None or geom.is_empty:
            report.skipped["empty or missing geometry"] += 1
            out.append(None)
            continue
        if kind in POLYGONAL:
            if not geom.is_valid:
                geom = shapely.make_valid(geom)
            polys = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type in ("Polygon", "MultiPolygon")]
            parts = [p for g in polys for p in getattr(g, "geoms", [g]) if not p.is_empty and p.area > 0]
            if not parts:
                report.skipped[f"not a polygon ({geom.geom_type})"] += 1
                out.append(None)
                continue
            out.append(shapely.MultiPolygon(parts))
        else:
            point = geom if geom.geom_type == "Point" else None
            if point is None and geom.geom_type == "MultiPoint" and len(geom.geoms) == 1:
                point = geom.geoms[0]
            if point is None or not (math.isfinite(point.x) and math.isfinite(point.y)):
                report.skipped[f"not a point ({geom.geom_type})"] += 1
                out.append(None)
                continue
            out.append(point)
    return out


def _jsonable(value):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if value is pd.NaT:
        return None
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def _text(value):
    value = _jsonable(value)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    value = str(value).strip()
    return value or None


def _copy_value(value):
    if value is None:
        return "\\N"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _rows(gdf, geoms, kind, code_field, name_field, layer_id, report):
    attrs = [c for c in gdf.columns if c != gdf.geometry.name]
    records = gdf[attrs].to_dict("records")
    for record, geom in zip(records, geoms):
        if geom is None:
            continue
        attributes = {k: _jsonable(v) for k, v in record.items()}
        wkb = shapely.to_wkb(shapely.set_srid(geom, SRID), hex=True, include_srid=True)
        code = _text(record.get(code_field))
        if kind in ("district", "boundary"):
            if code is None:
                report.skipped[f"no value in code field {code_field!r}"] += 1
                continue
            name = _text(record.get(name_field)) if name_field else None
            yield (layer_id, code, name or code, json.dumps(attributes), wkb)
        elif kind == "parcel":
            if code is None:
                report.skipped[f"no parcel id in field {code_field!r}"] += 1
                continue
            yield (layer_id, code, _text(record.get(name_field)) if name_field else None,
                   json.dumps(attributes), wkb)
        else:
            full = _text(record.get(code_field))
            if not full:
                report.skipped[f"no address in field {code_field!r}"] += 1
                continue
            parsed = addr.parse(_address_for_parsing(record, full))
            if not parsed.street:
                report.skipped["address could not be parsed"] += 1
                continue
            yield (layer_id, full, parsed.number, _text(record.get("number")) or parsed.number_text,
                   parsed.street, parsed.unit or _text(record.get("unit")),
                   _text(record.get("city")) or parsed.city, _text(record.get("zip")) or parsed.zip,
                   _text(record.get("parcel_id")), json.dumps(attributes), wkb)


def _address_for_parsing(record, full):
    """Prefer the gazetteer's own number + street columns when present (no locality to confuse the parser)."""
    number, street = _text(record.get("number")), _text(record.get("street"))
    return f"{number} {street}" if number and street else full


COLUMNS = {
    "districts": "(layer_id, code, name, attributes, geom)",
    "parcels": "(layer_id, parcel_id, address, attributes, geom)",
    "address_points": "(layer_id, address, number, number_text, street, unit, city, zip, parcel_id, attributes, geom)",
}


def import_layer(engine, path, name, kind, code_field=None, name_field=None, source_crs=None, progress=True):
    """Read, check and load a layer; returns an ImportReport. Raises LayerImportError, changing nothing."""
    if not NAME_RE.match(name or ""):
        raise LayerImportError("layer name must be lowercase letters, digits and _ (e.g. police_districts)")
    if kind not in LAYER_KINDS:
        raise LayerImportError(f"kind must be one of {', '.join(LAYER_KINDS)}")
    gdf, source_epsg = read_vector(path, source_crs)
    report = ImportReport(name, kind, source_crs=_describe_crs(path, source_crs))
    report.fields = [c for c in gdf.columns if c != gdf.geometry.name]
    if len(gdf) == 0:
        raise LayerImportError(f"{path} holds no features")
    code_field = code_field or DEFAULT_CODE_FIELD[kind]
    if code_field not in gdf.columns:
        raise LayerImportError(f"field {code_field!r} not found; the file has: {', '.join(report.fields)}"
                               " (choose one with --code-field)")
    if name_field and name_field not in gdf.columns:
        raise LayerImportError(f"field {name_field!r} not found; the file has: {', '.join(report.fields)}")
    geoms = _repair(gdf.geometry.values, kind, report)
    table = TABLE[kind]
    bar = tqdm(total=len(gdf), desc=f"importing {name}", unit="feat", disable=not progress, leave=False)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('pin311.layer.' || :n))"), {"n": name})
        conn.execute(text("DELETE FROM layers WHERE name = :n"), {"n": name})
        layer_id = conn.execute(text(
            "INSERT INTO layers (name, kind, source, source_srid, code_field, name_field) "
            "VALUES (:n, :k, :s, :srid, :c, :nf) RETURNING id"),
            {"n": name, "k": kind, "s": str(path), "srid": source_epsg, "c": code_field,
             "nf": name_field}).scalar_one()
        cursor = conn.connection.driver_connection.cursor()
        buffer, count = io.StringIO(), 0
        for row in _rows(gdf, geoms, kind, code_field, name_field, layer_id, report):
            buffer.write("\t".join(_copy_value(v) for v in row) + "\n")
            count += 1
            if count % CHUNK == 0:
                _flush(cursor, table, buffer)
                bar.update(CHUNK)
        _flush(cursor, table, buffer)
        bar.update(len(gdf) - bar.n)
        bar.close()
        if count == 0:
            raise LayerImportError(f"nothing to load from {path}: " + "; ".join(
                f"{n} {r}" for r, n in report.skipped.items()))
        conn.execute(text("UPDATE layers SET feature_count = :c, loaded_at = now() WHERE id = :id"),
                     {"c": count, "id": layer_id})
        report.loaded = count
    with engine.connect() as conn:  # fresh statistics so the planner uses the GiST index at once
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for name in (table, "district_parts") if table == "districts" else (table,):  # parts: migration 0019
            conn.execute(text(f"ANALYZE {name}"))
    return report


def _flush(cursor, table, buffer):
    if buffer.tell() == 0:
        return
    buffer.seek(0)
    cursor.copy_expert(f"COPY {table} {COLUMNS[table]} FROM STDIN", buffer)
    buffer.seek(0)
    buffer.truncate()


def _describe_crs(path, source_crs):
    if source_crs:
        return f"{_crs_input(source_crs)} (given)"
    try:
        info = pyogrio.read_info(_resolve_path(path)) if not str(path).lower().endswith((".csv", ".csv.gz")) else {}
        crs = info.get("crs")
    except Exception:  # noqa: BLE001
        crs = None
    return crs or "EPSG:4326"


def list_layers(conn):
    rows = conn.execute(text(
        "SELECT name, kind, feature_count, source_srid, loaded_at, source FROM layers ORDER BY kind, name"))
    return [dict(r._mapping) for r in rows]
