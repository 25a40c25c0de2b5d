"""Historical load of past requests (Boston 311 CSV, Open311 GeoReport v2 JSON lines), set-based.

Rows are read with pandas, located in memory with STRtree (gis.spatial_index), routed with the same
rules as live intake (gis.routing), then COPYed into a staging table and moved into service_requests
(with one 'created' event each, and a 'closed' event for closed ones) in one statement. The import is
all-or-nothing; rows already present (same public id) are skipped, so a re-run adds nothing.
"""
import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import text
from tqdm import tqdm

from gis.errors import InvalidInput
from gis.routing import Router
from gis.spatial_index import LayerIndex

FORMATS = ("boston-csv", "open311-json")
CHUNK = 20_000
_CLOSURE = (("duplicate", "duplicate"), ("invalid", "not_found"), ("unable to", "not_found"),
            ("not found", "not_found"), ("refer", "referred"), ("external", "referred"),
            ("resolved", "fixed"), ("fixed", "fixed"), ("complete", "fixed"), ("repaired", "fixed"),
            ("removed", "fixed"), ("picked up", "fixed"))


@dataclass
class BulkReport:
    source: str
    read: int = 0
    loaded: int = 0
    already_present: int = 0
    duplicates: int = 0          # rows repeating an id seen earlier in the same file
    refused: Counter = field(default_factory=Counter)

    def summary(self):
        lines = [f"requests from {self.source}: read {self.read:,}, loaded {self.loaded:,}, "
                 f"already present {self.already_present:,}, repeated in the file {self.duplicates:,}"]
        for reason, count in self.refused.most_common():
            lines.append(f"  refused {count:,}: {reason}")
        return "\n".join(lines)


def closure_reason(text_value):
    low = str(text_value or "").lower()
    for needle, reason in _CLOSURE:
        if needle in low:
            return reason
    return "no_action"


def _col(df, name, default=""):
    """A column, or a column of `default` when the file does not have it (optional fields)."""
    return df[name] if name in df.columns else pd.Series(default, index=df.index, dtype=object)


def _read(path, fmt):
    if fmt == "boston-csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        need = {"CASE_ENQUIRY_ID", "OPEN_DT", "CASE_STATUS", "TYPE", "LATITUDE", "LONGITUDE"}
        missing = need - set(df.columns)
        if missing:
            raise InvalidInput(f"{path} is not a Boston 311 CSV: missing {', '.join(sorted(missing))}")
        when = "%m/%d/%Y %I:%M:%S %p"
        return pd.DataFrame({
            "public_id": df["CASE_ENQUIRY_ID"].str.strip(),
            "service_name": df["TYPE"].str.strip(),
            "service_code": "",
            "status": df["CASE_STATUS"].str.strip().str.lower(),
            "description": _col(df, "CASE_TITLE"),
            "address": _col(df, "Location").str.replace(r"\s{2,}", ", ", regex=True),
            "lat": pd.to_numeric(df["LATITUDE"], errors="coerce"),
            "lon": pd.to_numeric(df["LONGITUDE"], errors="coerce"),
            "requested_at": pd.to_datetime(df["OPEN_DT"], format=when, errors="coerce"),
            "expected_at": pd.to_datetime(_col(df, "TARGET_DT"), format=when, errors="coerce"),
            "closed_at": pd.to_datetime(_col(df, "CLOSED_DT"), format=when, errors="coerce"),
            "closure_text": _col(df, "CLOSURE_REASON"),
            "channel_text": _col(df, "Source"),
        }), "America/New_York"
    if fmt == "open311-json":
        try:
            df = pd.read_json(path, lines=True, dtype=False)
        except ValueError as exc:
            raise InvalidInput(f"{path} is not Open311 JSON lines: {exc}") from None
        for col in ("service_request_id", "lat", "long", "requested_datetime"):
            if col not in df.columns:
                raise InvalidInput(f"{path} is not Open311 GeoReport v2 JSON: no {col!r} field")
        requested = pd.to_datetime(df["requested_datetime"], errors="coerce", utc=True)
        updated = pd.to_datetime(_col(df, "updated_datetime"), errors="coerce", utc=True)
        status = _col(df, "status", "open").fillna("open").astype(str).str.lower()
        return pd.DataFrame({
            "public_id": df["service_request_id"].astype(str).str.strip(),
            "service_name": _col(df, "service_name").fillna("").astype(str).str.strip(),
            "service_code": _col(df, "service_code").fillna("").astype(str).str.strip(),
            "status": status,
            "description": _col(df, "description").fillna("").astype(str).str.slice(0, 4000),
            "address": _col(df, "address").fillna("").astype(str),
            "lat": pd.to_numeric(df["lat"], errors="coerce"),
            "lon": pd.to_numeric(df["long"], errors="coerce"),
            "requested_at": requested,
            "expected_at": pd.to_datetime(df.get("expected_datetime"), errors="coerce", utc=True)
            if "expected_datetime" in df.columns else pd.NaT,
            "closed_at": updated.where(status == "closed"),
            "closure_text": _col(df, "status_notes").fillna("").astype(str),
            "channel_text": "open311",
        }), None
    raise InvalidInput(f"format must be one of {', '.join(FORMATS)}")


def _channel(value):
    low = str(value or "").lower()
    if "call" in low or "phone" in low:
        return "voice"
    if "app" in low or "open311" in low or "twitter" in low:
        return "open311"
    if "employee" in low or "internal" in low:
        return "agent"
    return "import"


def _localize(series, tz):
    if tz is None or series is pd.NaT:
        return series
    return series.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward").dt.tz_convert("UTC")


def _copy_text(value):
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


STAGING = """CREATE TEMP TABLE bulk_staging (
    public_id text, service_code text, status text, closure_reason text, description text, address text,
    lon float8, lat float8, parcel_id text, districts jsonb, crew_id int, routed_by text, channel text,
    requested_at timestamptz, expected_at timestamptz, closed_at timestamptz) ON COMMIT DROP"""

MOVE = text("""
WITH ins AS (
  INSERT INTO service_requests (public_id, service_code, status, closure_reason, description, geom, address,
        parcel_id, districts, crew_id, routed_by, channel, requested_at, updated_at, expected_at, closed_at)
  SELECT DISTINCT ON (public_id) public_id, service_code, status, closure_reason, description,
         ST_SetSRID(ST_MakePoint(lon, lat), 4326), address, parcel_id, districts, crew_id, routed_by, channel,
         requested_at, coalesce(closed_at, requested_at), expected_at, closed_at
    FROM bulk_staging ORDER BY public_id
  ON CONFLICT (public_id) DO NOTHING
  RETURNING id, status, closure_reason, requested_at, closed_at
), created AS (
  INSERT INTO request_events (request_id, kind, status, public_note, actor, at)
  SELECT id, 'created', 'open', 'Request received', 'import', requested_at FROM ins
), closed AS (
  INSERT INTO request_events (request_id, kind, status, public_note, actor, at, data)
  SELECT id, 'closed', 'closed', 'Case closed', 'import', closed_at, jsonb_build_object('reason', closure_reason)
    FROM ins WHERE status = 'closed'
)
SELECT count(*) FROM ins""")


def import_requests(engine, path, fmt, service_code=None, progress=True):
    """Load a file of past requests; returns a BulkReport. All or nothing."""
    df, tz = _read(path, fmt)
    report = BulkReport(str(path), read=len(df))
    bar = tqdm(total=len(df), desc="importing requests", unit="req", disable=not progress, leave=False)
    with engine.begin() as conn:
        # Bulk loads must not flood the live map's LISTEN channel with one notice per row.
        conn.execute(text("SET LOCAL pin311.bulk = 'on'"))
        # The engine's 5 s statement timeout is for web requests; moving a million rows takes longer.
        conn.execute(text("SET LOCAL statement_timeout = '15min'"))
        services = {r.name.lower(): r.code for r in conn.execute(text("SELECT code, name FROM services"))}
        codes = set(services.values())
        if service_code:
            if service_code not in codes:
                raise InvalidInput(f"unknown service code {service_code!r}")
            df["code"] = service_code
        else:
            by_name = df["service_name"].str.lower().map(services)
            by_code = df["service_code"].where(df["service_code"].isin(codes))
            df["code"] = by_name.fillna(by_code)
        keep = _refuse(df, report)
        df = df[keep].copy()
        index = LayerIndex(conn)
        where = index.locate(df["lon"].to_numpy(), df["lat"].to_numpy())
        outside = ~where["inside"]
        if outside.any():
            report.refused["outside the city boundary"] += int(outside.sum())
        df = df[~outside].copy()
        for key in where:
            where[key] = where[key][~outside]
        router = Router(conn)
        df["districts"] = _districts_json(index, where)
        crews, routed = router.route_many(df["code"].to_numpy(), where, df["lon"].to_numpy(), df["lat"].to_numpy())
        df["crew_id"], df["routed_by"], df["parcel_id"] = crews, routed, where["parcel_id"]
        for col in ("requested_at", "expected_at", "closed_at"):
            if col in df and hasattr(df[col], "dt"):
                df[col] = _localize(df[col], tz) if df[col].dt.tz is None else df[col]
        df["status"] = np.where(df["status"] == "closed", "closed", "open")
        df.loc[df["status"] == "closed", "closed_at"] = df.loc[df["status"] == "closed", "closed_at"].fillna(
            df.loc[df["status"] == "closed", "requested_at"])
        df["closure_reason"] = np.where(df["status"] == "closed", df["closure_text"].map(closure_reason), None)
        df["channel"] = df["channel_text"].map(_channel)
        conn.execute(text(STAGING))
        cursor = conn.connection.driver_connection.cursor()
        cols = ["public_id", "code", "status", "closure_reason", "description", "address", "lon", "lat",
                "parcel_id", "districts", "crew_id", "routed_by", "channel", "requested_at", "expected_at",
                "closed_at"]
        table = df[cols].copy()
        for col in ("public_id", "description", "address", "routed_by", "districts"):   # COPY text escapes
            table[col] = table[col].astype(object).where(table[col].notna(), None)
            table[col] = table[col].map(_copy_text, na_action="ignore")
        for start in range(0, len(table), CHUNK):
            part = table.iloc[start:start + CHUNK]
            buffer = io.StringIO()
            part.to_csv(buffer, sep="\t", header=False, index=False, na_rep="\\N", quoting=csv.QUOTE_NONE,
                        escapechar=None, lineterminator="\n")
            buffer.seek(0)
            cursor.copy_expert("COPY bulk_staging FROM STDIN", buffer)
            bar.update(len(part))
        bar.update(report.read - bar.n)
        bar.close()
        report.loaded = conn.execute(MOVE).scalar_one()
        report.duplicates = len(df) - df["public_id"].nunique()
        report.already_present = len(df) - report.duplicates - report.loaded
    return report


def _refuse(df, report):
    keep = np.ones(len(df), dtype=bool)
    checks = (
        (df["public_id"].fillna("").str.match(r"^[A-Za-z0-9_.-]{1,64}$") == False,  # noqa: E712
         "missing or malformed id"),
        (df["code"].isna(), "unknown service"),
        (~(np.isfinite(df["lat"]) & np.isfinite(df["lon"])), "no coordinates"),
        (df["requested_at"].isna(), "no or unreadable request date"),
    )
    for mask, reason in checks:
        mask = mask.to_numpy() & keep
        if mask.any():
            report.refused[reason] += int(mask.sum())
            if reason == "unknown service":
                for name, n in df.loc[mask, "service_name"].value_counts().head(5).items():
                    report.refused[f"  e.g. service {name!r}"] += int(n)
        keep &= ~mask
    return keep


def _districts_json(index, where):
    layers = index.layer_names
    n = len(where["inside"])
    out = []
    for i in range(n):
        d = {}
        for layer in layers:
            code = where[layer][i]
            if code is not None:
                d[layer] = {"code": code, "name": index.names[layer].get(code)}
        out.append(json.dumps(d))
    return out

