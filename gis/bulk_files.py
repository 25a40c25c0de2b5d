"""Past requests' files read into one table of our column names: Boston 311 CSV and Open311 GeoReport v2
JSON lines (gis.bulk loads them), and the mapping of their free-text closure reasons and sources."""
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json

from gis.errors import InvalidInput

FORMATS = ("boston-csv", "open311-json")
_CLOSURE = (("duplicate", "duplicate"), ("invalid", "not_found"), ("unable to", "not_found"),
            ("not found", "not_found"), ("refer", "referred"), ("external", "referred"),
            ("resolved", "fixed"), ("fixed", "fixed"), ("complete", "fixed"), ("repaired", "fixed"),
            ("removed", "fixed"), ("picked up", "fixed"))


def closure_reason(text_value):
    low = str(text_value or "").lower()
    for needle, reason in _CLOSURE:
        if needle in low:
            return reason
    return "no_action"


def _col(df, name, default=""):
    """A column, or a column of `default` when the file does not have it (optional fields)."""
    return df[name] if name in df.columns else pd.Series(default, index=df.index, dtype=object)


def read(path, fmt):
    """(rows as one DataFrame in our column names, the time zone of naive times or None); InvalidInput for
    a file that is not of the format."""
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
        df = _read_json_lines(path)
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


def _read_json_lines(path):
    """JSON lines as a DataFrame: pyarrow's reader (~10x pandas'), pandas' when pyarrow refuses the file
    (e.g. a field that is a number in one record and a string in another); both keep absent fields absent.
    pyarrow types ISO 8601 date fields as UTC timestamps when every value is one (offsets applied), as
    pandas' to_datetime(utc=True) does afterwards for the others."""
    try:
        # Streamed: pyarrow inflates the file while its threads parse the blocks already inflated (0.45-0.6 s
        # -> 0.26-0.28 s for the 82 MB illegal-parking file). Columns may come in another order; read by name.
        with pa.input_stream(str(path), compression="gzip" if str(path).endswith(".gz") else None) as stream:
            table = pa_json.read_json(stream)
    except (pa.ArrowInvalid, OSError, EOFError):
        table = None
    if table is not None:
        for i, fld in enumerate(table.schema):   # numeric ids stay digits (not 1.01e11) even with gaps
            if pa.types.is_integer(fld.type) and fld.name not in ("lat", "long"):
                table = table.set_column(i, fld.name, table.column(i).cast(pa.string()))
        return table.to_pandas()
    try:
        return pd.read_json(path, lines=True, dtype=False)
    except ValueError as exc:
        raise InvalidInput(f"{path} is not Open311 JSON lines: {exc}") from None


def channel(value):
    """Our channel for the source a file names ('Constituent Call', 'Citizens Connect App', …)."""
    low = str(value or "").lower()
    if "call" in low or "phone" in low:
        return "voice"
    if "app" in low or "open311" in low or "twitter" in low:
        return "open311"
    if "employee" in low or "internal" in low:
        return "agent"
    return "import"


def localize(series, tz):
    """Naive local times as UTC (the file's own zone; DST gaps shifted forward, ambiguous hours NaT)."""
    if tz is None or series is pd.NaT:
        return series
    return series.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward").dt.tz_convert("UTC")
