"""Historical load of past requests (Boston 311 CSV, Open311 GeoReport v2 JSON lines), set-based.

Rows are read by gis.bulk_files (pyarrow; pandas when pyarrow cannot), tested against the city boundary and
de-duplicated by id, then, chunk by chunk, located in memory with STRtree (gis.spatial_index), routed
with the same rules as live intake (gis.routing), COPYed (CSV written by pyarrow) into a staging table
and moved into service_requests (with one 'created' event each, and a 'closed' event for closed ones) by
one INSERT … SELECT. A loader thread runs each chunk's COPY and INSERT on the server while the next chunk
is prepared in Python. The import is all-or-nothing (one transaction); rows already present (same public
id) are skipped, so a re-run adds nothing.

The transaction runs with `pin311.bulk = 'on'`, under which the per-row data-version trigger is skipped
(migration 0011): the 'requests' data version is bumped once, last thing before commit, and the live
consoles reload on seeing it move (gis/live.py). Each row carries its service's `sensitive` flag, so its
public point is the generated column's (migration 0018) with no trigger call.

Two ways to load (`rebuild_indexes`, the CLI's --rebuild-indexes):
- live ('no'; 'auto' for a load smaller than the table or under 10,000 rows): foreign keys, checks and
  every index stay live, and intake and readers carry on meanwhile. PostgreSQL's index, key and
  foreign-key upkeep is most of the time (~40 µs of server CPU a request more than a large load's).
- large load ('yes'; 'auto' for at least 10,000 rows and at least as many as service_requests holds, e.g.
  the first migration from the old CRM): service_requests and request_events are locked (with the tables
  their foreign keys join), their indexes, keys and foreign keys dropped, the rows loaded (ids already
  present left out beforehand, as there is no unique index for ON CONFLICT), and the same indexes and
  constraints made again from the catalog before commit (gis.bulk_indexes) — all in the one transaction,
  so a failure rolls the drops back too and no other session sees the tables without indexes; they wait
  for the commit instead. 'auto' waits at most a second for the lock and loads live when the tables stay
  busy.
"""
import io
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import text
from tqdm import tqdm

from gis import bulk_files, bulk_indexes, geocode
from gis.errors import InvalidInput
from gis.intake import PLACE_MIN_SCORE
from gis.routing import Router
from gis.spatial_index import LayerIndex

# Boston's systems file a request they could not place on City Hall: a fake hot spot in ward 3 / A1 if loaded
# as it is. Such a row is placed by its address (the geocoder, as intake would: a confident, unambiguous
# match), else refused with its reason.
PLACEHOLDERS = ((42.3594, -71.0587),)
CHUNK = 25_000          # rows per COPY + INSERT … SELECT (the progress bar moves per chunk)


@dataclass
class BulkReport:
    source: str
    read: int = 0
    loaded: int = 0
    already_present: int = 0
    duplicates: int = 0          # rows repeating an id seen earlier in the same file
    placed_by_address: int = 0   # rows on a placeholder point, placed by their address instead
    refused: Counter = field(default_factory=Counter)
    unknown_services: Counter = field(default_factory=Counter)   # the service names behind "unknown service"
    rebuilt_indexes: bool = False   # loaded with the indexes, keys and foreign keys set aside (gis.bulk_indexes)
    tables_busy: bool = False       # a large load ('auto') that found the tables in use: loaded with live indexes

    def summary(self):
        lines = [f"requests from {self.source}: read {self.read:,}, loaded {self.loaded:,}, "
                 f"already present {self.already_present:,}, repeated in the file {self.duplicates:,}"]
        if self.placed_by_address:
            lines.append(f"  placed by their address (they were on the City Hall placeholder point): "
                         f"{self.placed_by_address:,}")
        if self.rebuilt_indexes:
            lines.append("  loaded as a large load: the tables' indexes, keys and foreign keys were made again")
        elif self.tables_busy:
            lines.append("  large enough to rebuild the indexes, but other sessions were using the tables: "
                         "loaded with live indexes")
        for reason, count in self.refused.most_common():
            lines.append(f"  refused {count:,}: {reason}")
        if self.unknown_services:
            names = ", ".join(f"{name!r} ({n:,})" for name, n in self.unknown_services.most_common(5))
            lines.append(f"    unknown services, most frequent: {names} — add them to the catalogue, or load "
                         "the file as one service with --service CODE")
        return "\n".join(lines)


STAGING = """CREATE TEMP TABLE bulk_staging (
    public_id text, service_code text, status text, closure_reason text, description text, address text,
    lon float8, lat float8, parcel_id text, districts_id int, crew_id int, routed_by text, channel text,
    requested_at timestamptz, expected_at timestamptz, closed_at timestamptz) ON COMMIT DROP"""
# Each distinct districts value once (a few hundred: districts nest), referred to by number from the
# staging rows: the server parses a few hundred JSON texts instead of one per row (COPY 0.8 -> 0.4 s for
# the 131k illegal-parking rows).
STAGING_DISTRICTS = "CREATE TEMP TABLE bulk_districts (id int, districts jsonb) ON COMMIT DROP"
COPY_STAGING = "COPY bulk_staging FROM STDIN WITH (FORMAT csv)"
COPY_DISTRICTS = "COPY bulk_districts FROM STDIN WITH (FORMAT csv)"
STAGED = ["public_id", "code", "status", "closure_reason", "description", "address", "lon", "lat", "parcel_id",
          "districts_id", "crew_id", "routed_by", "channel", "requested_at", "expected_at", "closed_at"]

# `sensitive` from the service (the foreign key of 0018 holds it equal; public_geom is generated from it).
# Ids are unique in the staging table (de-duplicated in Python); ON CONFLICT skips the ones already in
# service_requests.
MOVE = """
WITH ins AS (
  INSERT INTO service_requests (public_id, service_code, sensitive, status, closure_reason, description, geom,
        address, parcel_id, districts, crew_id, routed_by, channel, requested_at, updated_at, expected_at, closed_at)
  SELECT b.public_id, b.service_code, s.sensitive, b.status, b.closure_reason, b.description, p.geom,
         b.address, b.parcel_id, d.districts,
         b.crew_id, b.routed_by, b.channel, b.requested_at, coalesce(b.closed_at, b.requested_at),
         b.expected_at, b.closed_at
    FROM bulk_staging b
    JOIN bulk_districts d ON d.id = b.districts_id
    CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(b.lon, b.lat), 4326) AS geom) p
    LEFT JOIN services s ON s.code = b.service_code
  ON CONFLICT (public_id) DO NOTHING
  RETURNING id, status, closure_reason, requested_at, closed_at
), events AS (
  INSERT INTO request_events (request_id, kind, status, public_note, actor, at, data)
  SELECT ins.id, e.kind, e.status, e.note, 'import', e.at, e.data
    FROM ins CROSS JOIN LATERAL (VALUES
         ('created', 'open', 'Request received', ins.requested_at, '{}'::jsonb),
         ('closed', 'closed', 'Case closed', ins.closed_at, jsonb_build_object('reason', ins.closure_reason))
         ) e (kind, status, note, at, data)
   WHERE e.kind = 'created' OR ins.status = 'closed'
)
SELECT count(*) FROM ins"""

# The same for rows known to be new (a large load, which has dropped the unique index ON CONFLICT needs).
MOVE_NEW = MOVE.replace("  ON CONFLICT (public_id) DO NOTHING\n", "")

# Done once for the whole load instead of per row (see migration 0011), last thing before the commit.
# Live consoles see the version move with no new request in their window and reload (gis/live.py).
BUMP_VERSION = text("SELECT pin311_bump_version('requests')")


def import_requests(engine, path, fmt, service_code=None, progress=True, rebuild_indexes="auto"):
    """Load a file of past requests; returns a BulkReport. All or nothing.

    rebuild_indexes ('auto', 'yes', 'no'): whether to load with the tables' indexes, keys and foreign keys
    set aside and made again before commit (gis.bulk_indexes; 'auto' does it for a load at least as
    large as the table and of at least LARGE_LOAD_MIN_ROWS rows)."""
    if rebuild_indexes not in bulk_indexes.MODES:
        raise InvalidInput(f"rebuild-indexes must be one of {', '.join(bulk_indexes.MODES)}")
    bar = tqdm(total=None, desc="reading", unit="req", disable=not progress, leave=False)
    with engine.begin() as conn, ThreadPoolExecutor(max_workers=1, thread_name_prefix="pin311-bulk-read") as reader:
        # The file is read in a thread while this one loads the layers and rules (the parsers and the
        # database driver let go of the GIL for most of it); the connection stays with this thread.
        reading = reader.submit(bulk_files.read, path, fmt)
        # Skips the per-row triggers this load replaces, set-based (migration 0011); SET LOCAL ends with
        # the transaction, so the pooled connection goes back as it came.
        conn.execute(text("SET LOCAL pin311.bulk = 'on'"))
        # The engine's 5 s statement timeout is for web requests; moving a million rows takes longer.
        conn.execute(text("SET LOCAL statement_timeout = '15min'"))
        services = {r.name.lower(): r.code for r in conn.execute(text("SELECT code, name FROM services"))}
        codes = set(services.values())
        index, router = LayerIndex(conn), Router(conn)
        df, tz = reading.result()
        report = BulkReport(str(path), read=len(df))
        bar.reset(total=len(df))
        if service_code:
            if service_code not in codes:
                raise InvalidInput(f"unknown service code {service_code!r}")
            df["code"] = service_code
        else:
            by_name = df["service_name"].str.lower().map(services)
            by_code = df["service_code"].where(df["service_code"].isin(codes))
            df["code"] = by_name.fillna(by_code)
        bar.set_description("locating")
        keep = _refuse(df, report)
        keep &= _place_placeholders(conn, df, keep, report)
        df = df[keep]
        inside = index.inside(df["lon"].to_numpy(), df["lat"].to_numpy())
        if not inside.all():
            report.refused["outside the city boundary"] += int((~inside).sum())
        # Of the rows left, an id repeated in the file is loaded once: its first row in the file.
        take = inside.copy()
        take[take] = ~df["public_id"][take].duplicated(keep="first").to_numpy()
        report.duplicates = int(inside.sum() - take.sum())
        df = df[take].copy()
        bar.update(report.read - len(df))          # refused and repeated rows are done with
        for col in ("requested_at", "expected_at", "closed_at"):
            if col in df and hasattr(df[col], "dt"):
                df[col] = bulk_files.localize(df[col], tz) if df[col].dt.tz is None else df[col]
        df = df.sort_values("public_id", kind="stable")   # the unique index is filled in order
        rebuild = bulk_indexes.wants_rebuild(rebuild_indexes, len(df), bulk_indexes.rows_present(conn))
        to_load, aside, move = len(df), None, MOVE
        if rebuild and len(df):
            if bulk_indexes.lock(conn, required=rebuild_indexes == "yes"):
                # Without the unique index there is no ON CONFLICT: the ids already present are left out
                # here instead, looked up while the index still exists (and the lock keeps it so).
                if conn.scalar(text("SELECT EXISTS (SELECT FROM service_requests)")):   # not a first load
                    present = conn.execute(text("SELECT public_id FROM service_requests WHERE public_id = ANY(:ids)"),
                                           {"ids": df["public_id"].tolist()}).scalars().all()
                    df = df[~df["public_id"].isin(present)]
                if len(df):              # nothing new (a re-run): nothing to rebuild
                    aside, move = bulk_indexes.set_aside(conn), MOVE_NEW
            else:
                report.tables_busy = True
        conn.execute(text(STAGING))
        conn.execute(text(STAGING_DISTRICTS))
        bar.set_description("loading")
        report.loaded = _load(conn, df, index, router, bar, move)
        report.already_present = to_load - report.loaded
        if aside:
            bar.set_description("rebuilding indexes")
            bulk_indexes.restore(conn, aside)
        report.rebuilt_indexes = bool(aside)
        if report.loaded:
            conn.execute(BUMP_VERSION)
        bar.set_description("committing")
    bar.close()
    return report


def _load(conn, df, index, router, bar, move):
    """Stage and move df chunk by chunk; returns the rows inserted. Two stages overlap: this thread
    locates, routes and writes the CSV of chunk k+1 while a loader thread has the server COPY and move
    chunk k (psycopg2 lets go of the GIL while it waits for the server), so with a core each the wall
    time tends to the larger of the two instead of their sum. The loader uses the transaction's own
    connection, one statement at a time, and this thread touches the connection only once it is done."""
    cursor = conn.connection.driver_connection.cursor()
    districts = _DistrictNumbers(index)

    def load(csv, new_districts, rows):
        if new_districts:
            cursor.copy_expert(COPY_DISTRICTS, io.BytesIO(new_districts))
        cursor.copy_expert(COPY_STAGING, io.BytesIO(csv), size=1 << 20)
        cursor.execute(move)
        (loaded,) = cursor.fetchone()
        cursor.execute("TRUNCATE bulk_staging")
        return loaded, rows

    loaded = 0

    def wait(pending):           # the previous chunk's load: its count, and the bar moved on
        nonlocal loaded
        if pending is not None:
            n, rows = pending.result()
            loaded += n
            bar.update(rows)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pin311-bulk-load") as loader:
        pending = None
        try:
            for start in range(0, len(df), CHUNK):
                part = df.iloc[start:start + CHUNK]
                csv, new_districts = _staged_csv(part, index, router, districts)
                wait(pending)
                pending = loader.submit(load, csv, new_districts, len(part))
            wait(pending)
        finally:
            if pending is not None:
                pending.cancel()        # an error here: the executor still waits for a running load
    cursor.close()
    return loaded


def _staged_csv(part, index, router, districts):
    """One chunk's staging rows as CSV for COPY (located, routed, closure and channel mapped), and the CSV
    of the districts values it is the first to use (None when there are none)."""
    lons, lats = part["lon"].to_numpy(), part["lat"].to_numpy()
    where = index.locate(lons, lats, boundary=False)          # every row here is inside (checked above)
    crews, routed = router.route_many(part["code"].to_numpy(), where, lons, lats)
    closed = (part["status"] == "closed").to_numpy()
    closed_at = part["closed_at"].where(~closed | part["closed_at"].notna(), part["requested_at"])
    staged = pd.DataFrame({
        "public_id": part["public_id"], "code": part["code"],
        "status": np.where(closed, "closed", "open"),
        "closure_reason": np.where(closed, _map_distinct(part["closure_text"], bulk_files.closure_reason), None),
        "description": part["description"], "address": part["address"], "lon": lons, "lat": lats,
        "parcel_id": where["parcel_id"], "districts_id": districts.numbers(where),
        "crew_id": pd.array(crews, dtype="Int64"), "routed_by": routed,
        "channel": _map_distinct(part["channel_text"], bulk_files.channel),
        "requested_at": part["requested_at"], "expected_at": part["expected_at"], "closed_at": closed_at,
    }, index=part.index)
    buffer = io.BytesIO()
    pa_csv.write_csv(_arrow_table(staged[STAGED]), buffer, pa_csv.WriteOptions(include_header=False))
    return buffer.getvalue(), districts.new_csv()


def _arrow_table(df):
    """The staging columns as an Arrow table whose CSV PostgreSQL's COPY (FORMAT csv) reads back exactly:
    strings are quoted (an empty string stays empty), NULL is an unquoted empty field, timestamps
    are UTC with a Z, floats are written to round-trip."""
    columns, names = [], []
    for name in df.columns:
        col = df[name]
        if name in ("lon", "lat"):
            arr = pa.array(col.to_numpy(dtype=float), type=pa.float64())
        elif name in ("crew_id", "districts_id"):
            arr = pa.array(col, type=pa.int64(), from_pandas=True)
        elif name.endswith("_at"):
            values = pd.to_datetime(col, utc=True) if len(col) else col
            arr = pa.array(values, type=pa.timestamp("us", tz="UTC"), from_pandas=True)
        else:
            arr = pa.array(col, type=pa.string(), from_pandas=True)
        columns.append(arr)
        names.append(name)
    return pa.Table.from_arrays(columns, names=names)


def _place_placeholders(conn, df, keep, report):
    """Rows (among `keep`) on a placeholder point get their address's point; False for those that cannot."""
    lat, lon = df["lat"].to_numpy().round(4), df["lon"].to_numpy().round(4)
    on = np.zeros(len(df), dtype=bool)
    for p_lat, p_lon in PLACEHOLDERS:
        on |= (lat == p_lat) & (lon == p_lon)
    on &= keep
    placed = np.ones(len(df), dtype=bool)
    if not on.any():
        return placed
    rows = np.flatnonzero(on)
    found = geocode.geocode_many(conn, df["address"].iloc[rows].tolist())
    for i, cand in zip(rows, found):
        if cand is not None and cand.lat is not None and cand.score >= PLACE_MIN_SCORE:
            df.iat[i, df.columns.get_loc("lat")], df.iat[i, df.columns.get_loc("lon")] = cand.lat, cand.lon
            report.placed_by_address += 1
        else:
            placed[i] = False
    if not placed.all():
        report.refused["on the City Hall placeholder point, and no address the gazetteer knows"] += \
            int((~placed).sum())
    return placed


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
                    report.unknown_services[name] += int(n)
        keep &= ~mask
    return keep


def _map_distinct(values, fn):
    """fn over each distinct value once (free texts repeat: 'Case resolved', 'Citizens Connect App' …)."""
    values = pd.Series(values).fillna("")
    distinct = pd.unique(values)
    return values.map(dict(zip(distinct, map(fn, distinct)))).to_numpy(dtype=object)


class _DistrictNumbers:
    """The districts column's values, numbered across the chunks of one load: {layer: {code, name}} as JSON
    for each layer covering the point, built once per distinct combination of codes."""

    def __init__(self, index):
        self.index, self.known, self.new = index, {}, []

    def numbers(self, where):
        """The number of each row's districts value (int array); values not seen before are kept for new_csv()."""
        layers, n = self.index.layer_names, len(where["inside"])
        combo = np.zeros(n, dtype=np.int64)
        for layer in layers:       # rows with the same code in every layer get the same number (None is -1)
            codes = pd.factorize(where[layer])[0]
            combo = pd.factorize(combo * (int(codes.max(initial=-1)) + 2) + codes + 1)[0]
        numbers = []
        for row in np.unique(combo, return_index=True)[1]:     # combos are numbered 0, 1, … by first row
            codes = {layer: where[layer][row] for layer in layers if where[layer][row] is not None}
            value = json.dumps({layer: {"code": code, "name": self.index.names[layer].get(code)}
                                for layer, code in codes.items()})
            if value not in self.known:
                self.known[value] = len(self.known)
                self.new.append((self.known[value], value))
            numbers.append(self.known[value])
        return np.array(numbers, dtype=np.int64)[combo]

    def new_csv(self):
        """CSV (number, JSON) of the values numbered since the last call, for COPY; None if there are none."""
        if not self.new:
            return None
        numbers, values = zip(*self.new)
        self.new = []
        buffer = io.BytesIO()
        table = pa.table({"id": pa.array(numbers, pa.int64()), "districts": pa.array(values, pa.string())})
        pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False))
        return buffer.getvalue()
