"""Analyst aggregates over service requests: trend, district backlog and SLA, hot spots, crews.

Every figure is one SQL statement (GROUP BY in PostgreSQL), never a Python loop over requests, so a
year of data answers in milliseconds. Staff-only: reads service_requests directly (no contacts).
Filters (`Filters`): requested_at in [start, end), one service code, one district (layer + code).
Days and weeks are the city's (sessions run in its time zone, gis.db), both in filters and in buckets.

SLA: a request "met" its SLA when it closed at or before expected_at; it is "overdue" while open past
expected_at. Compliance = met / (closed with an expected_at). An open request without an expected_at has
no SLA date: it is counted apart, neither within SLA nor overdue.
"""
import json
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text

from gis.db import city_today
from gis.errors import InvalidInput

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Filters:
    start: date | None = None
    end: date | None = None          # exclusive: the day after the last one shown
    category: str | None = None
    district_layer: str | None = None
    district: str | None = None


def _day(raw, field):
    if raw in (None, ""):
        return None
    if isinstance(raw, date):
        return raw
    try:
        return datetime.strptime(str(raw).strip(), "%Y-%m-%d").date()
    except ValueError:
        raise InvalidInput(f"{field} must be a date like 2026-01-31", field=field) from None


# Named periods an analyst asks for ("requests by police district this week"), ending today.
PERIODS = {"today": "Today", "this_week": "This week", "last_7_days": "Last 7 days",
           "this_month": "This month", "year_to_date": "Year to date"}


def period_days(period, today):
    """(first day, last day) of a named period that ends on `today` (weeks start on Monday, as
    PostgreSQL's date_trunc('week') has them)."""
    firsts = {"today": today, "this_week": today - timedelta(days=today.weekday()),
              "last_7_days": today - timedelta(days=6), "this_month": today.replace(day=1),
              "year_to_date": today.replace(month=1, day=1)}
    if period not in firsts:
        raise InvalidInput(f"period must be one of {', '.join(PERIODS)}", field="period")
    return firsts[period], today


def parse_filters(args, today=None):
    """Filters from query-string style args (start, end inclusive, or a named period ending today in the
    city; category, district_layer, district)."""
    start, end = _day(args.get("start"), "start"), _day(args.get("end"), "end")
    period = (args.get("period") or "").strip()
    if period and not (start or end):
        start, end = period_days(period, today or city_today())
    if start and end and end < start:
        raise InvalidInput("end is before start", field="end")
    layer = (args.get("district_layer") or "").strip() or None
    if layer and not _NAME.match(layer):
        raise InvalidInput("unknown district layer", field="district_layer")
    district = (args.get("district") or "").strip()[:64] or None
    if district and not layer:
        raise InvalidInput("choose the district layer of the district", field="district_layer")
    return Filters(start, end + timedelta(days=1) if end else None,
                   (args.get("category") or "").strip()[:64] or None, layer, district)


def _where(f, alias="r"):
    """(SQL condition, params) for the filters; values always bound, never formatted in."""
    cond, params = ["TRUE"], {}
    if f.start:
        cond.append(f"{alias}.requested_at >= :start")
        params["start"] = f.start
    if f.end:
        cond.append(f"{alias}.requested_at < :end")
        params["end"] = f.end
    if f.category:
        cond.append(f"{alias}.service_code = :category")
        params["category"] = f.category
    if f.district_layer and f.district:
        cond.append(f"{alias}.districts -> CAST(:f_layer AS text) ->> 'code' = :f_district")
        params.update(f_layer=f.district_layer, f_district=f.district)
    return " AND ".join(cond), params


def _rows(conn, sql, params):
    """Run an aggregate as dicts. JIT off for this transaction: PostGIS functions carry large cost
    estimates, so PostgreSQL would spend a second compiling a query that runs in a tenth of that."""
    conn.execute(text("SET LOCAL jit = off"))
    return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def district_layers(conn):
    return list(conn.execute(text("SELECT name FROM layers WHERE kind = 'district' ORDER BY name")).scalars())


def categories(conn):
    return [dict(r._mapping) for r in conn.execute(text("SELECT code, name FROM services ORDER BY name"))]


def check_layer(conn, layer, field="district_layer"):
    if layer not in district_layers(conn):
        raise InvalidInput(f"no district layer {str(layer)[:64]!r}", field=field)
    return layer


def natural_key(code):
    """Sort key in which digits compare as numbers: ward 2 before ward 10, A7 before A15."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(code or ""))]


def districts(conn):
    """{district layer: [(code, name)]}: every district of every district layer, layers by name and codes
    in natural order (A1, A7, A15, B2; ward 2 before 10). The dashboards' filter and the sweeps' picker."""
    out = {}
    for layer, code, name in conn.execute(text(
            "SELECT l.name, d.code, d.name FROM districts d JOIN layers l ON l.id = d.layer_id "
            "WHERE l.kind = 'district'")):
        out.setdefault(layer, []).append((code, name))
    return {layer: sorted(found, key=lambda d: natural_key(d[0])) for layer, found in sorted(out.items())}


def _plain_text(value):
    return re.sub(r"[^0-9a-z]", "", str(value).lower())


def resolve(conn, f):
    """`f` checked against the city's layers and catalogue, its district as its layer's own code.

    A district may be typed as the map shows it: "A-1", "a1" or "District A-1" find A1. A district,
    layer or category that does not exist is an InvalidInput that says so (and what there is), never a
    page of zeros."""
    if f.category and not conn.scalar(text("SELECT 1 FROM services WHERE code = :c"), {"c": f.category}):
        raise InvalidInput(f"no category {f.category[:64]!r}: choose one from the list", field="category")
    if not f.district_layer:
        return f
    check_layer(conn, f.district_layer)
    if not f.district:
        return f
    found = districts(conn).get(f.district_layer, [])
    wanted = _plain_text(f.district)
    for code, name in found:
        if f.district == code or wanted in (_plain_text(code), _plain_text(name or "")):
            return replace(f, district=code)
    listed = ", ".join(name or code for code, name in found[:12]) + (", …" if len(found) > 12 else "")
    raise InvalidInput(f"no district {f.district[:64]!r} in {f.district_layer}: choose one of {listed}",
                       field="district")


def over_time(conn, f, unit="week"):
    """[{period, service_code, service_name, requests}] for every day, week or month of the range and every
    category requested in it, zero where none was: a gap is a zero, not a missing point. The range is the
    filters' (the periods holding their first and last day), else the first and last request's."""
    if unit not in ("day", "week", "month"):
        raise InvalidInput("interval must be day, week or month", field="interval")
    where, params = _where(f)
    sql = f"""
        WITH counts AS (
          SELECT date_trunc(:unit, r.requested_at)::date AS period, r.service_code, count(*) AS requests
            FROM service_requests r WHERE {where} GROUP BY 1, 2),
        periods AS (
          SELECT generate_series(coalesce(date_trunc(:unit, CAST(:first_day AS timestamp)), min(period)),
                                 coalesce(date_trunc(:unit, CAST(:last_day AS timestamp)), max(period)),
                                 CAST('1 ' || :unit AS interval))::date AS period
            FROM counts HAVING count(*) > 0)
        SELECT p.period, c.service_code, s.name AS service_name, coalesce(n.requests, 0) AS requests
          FROM periods p
         CROSS JOIN (SELECT DISTINCT service_code FROM counts) c
          JOIN services s ON s.code = c.service_code
          LEFT JOIN counts n ON n.period = p.period AND n.service_code = c.service_code
         ORDER BY 1, 4 DESC, 2"""
    last_day = f.end - timedelta(days=1) if f.end else None
    return _rows(conn, sql, {**params, "unit": unit, "first_day": f.start, "last_day": last_day})


_BY_DISTRICT = """
WITH agg AS (
  SELECT r.districts -> CAST(:layer AS text) ->> 'code' AS code,
         count(*) AS requests,
         count(*) FILTER (WHERE r.status <> 'closed') AS open,
         count(*) FILTER (WHERE r.status <> 'closed' AND r.expected_at < now()) AS overdue,
         count(*) FILTER (WHERE r.status <> 'closed' AND r.expected_at IS NULL) AS open_no_sla,
         count(*) FILTER (WHERE r.status = 'closed' AND r.expected_at IS NOT NULL) AS closed_with_sla,
         count(*) FILTER (WHERE r.status = 'closed' AND r.closed_at <= r.expected_at) AS met_sla
    FROM service_requests r WHERE {where}
   GROUP BY 1)
SELECT d.code, d.name, coalesce(a.requests, 0) AS requests, coalesce(a.open, 0) AS open,
       coalesce(a.open - a.overdue - a.open_no_sla, 0) AS open_within_sla,
       coalesce(a.overdue, 0) AS overdue, coalesce(a.open_no_sla, 0) AS open_no_sla,
       coalesce(a.closed_with_sla, 0) AS closed_with_sla,
       coalesce(a.met_sla, 0) AS met_sla,
       round(100.0 * a.met_sla / nullif(a.closed_with_sla, 0), 1) AS sla_pct{geom}
  FROM districts d JOIN layers l ON l.id = d.layer_id AND l.name = :layer
  LEFT JOIN agg a ON a.code = d.code"""


def by_district(conn, f, layer, geometry=False):
    """Per district of `layer`, codes in natural order: requests, the open backlog split into within SLA,
    overdue and without an SLA date, SLA met/closed and compliance %."""
    check_layer(conn, layer, "layer")
    where, params = _where(f)
    geom = ", ST_AsGeoJSON(ST_SimplifyPreserveTopology(d.geom, 0.0001), 6) AS geometry" if geometry else ""
    rows = _rows(conn, _BY_DISTRICT.format(where=where, geom=geom), {**params, "layer": layer})
    return sorted(rows, key=lambda r: natural_key(r["code"]))


def hot_spots(conn, f, cell_m=250, min_count=1, open_only=False):
    """Square cells of cell_m metres (EPSG:3857) with their request count, busiest first; each with its
    centre (lat, lon) and the neighbourhood most of its requests are in, for a label people can place."""
    try:
        cell_m = float(cell_m)
    except (TypeError, ValueError):
        raise InvalidInput("cell must be a number of metres", field="cell") from None
    if not 50 <= cell_m <= 5000:
        raise InvalidInput("cell must be between 50 and 5000 metres", field="cell")
    where, params = _where(f)
    if open_only:
        where += " AND r.status <> 'closed'"
    sql = f"""
        WITH c AS (
          SELECT floor(ST_X(p) / :cell) AS i, floor(ST_Y(p) / :cell) AS j, count(*) AS requests,
                 count(*) FILTER (WHERE status <> 'closed') AS open,
                 mode() WITHIN GROUP (ORDER BY neighbourhood) AS neighbourhood
            FROM (SELECT ST_Transform(r.geom, 3857) AS p, r.status,
                         r.districts -> 'neighborhoods' ->> 'name' AS neighbourhood
                    FROM service_requests r WHERE {where}) x
           GROUP BY 1, 2 HAVING count(*) >= :min_count)
        SELECT i::bigint AS i, j::bigint AS j, requests, open, neighbourhood,
               round(ST_Y(centre)::numeric, 5) AS lat, round(ST_X(centre)::numeric, 5) AS lon,
               ST_AsGeoJSON(ST_Transform(ST_MakeEnvelope(i * :cell, j * :cell, (i + 1) * :cell,
                                                          (j + 1) * :cell, 3857), 4326), 6) AS geometry
          FROM c, ST_Transform(ST_SetSRID(ST_MakePoint((i + 0.5) * :cell, (j + 0.5) * :cell), 3857), 4326) centre
         ORDER BY requests DESC, i, j"""
    return _rows(conn, sql, {**params, "cell": cell_m, "min_count": int(min_count)})


def top_categories(conn, f, layer="neighborhoods", per_district=3):
    """The `per_district` most requested categories in each district of `layer`, with counts and rank."""
    check_layer(conn, layer)
    where, params = _where(f)
    sql = f"""
        SELECT district, district_name, service_code, service_name, requests, rank FROM (
          SELECT r.districts -> CAST(:layer AS text) ->> 'code' AS district,
                 r.districts -> CAST(:layer AS text) ->> 'name' AS district_name,
                 r.service_code, s.name AS service_name, count(*) AS requests,
                 row_number() OVER (PARTITION BY r.districts -> CAST(:layer AS text) ->> 'code'
                                    ORDER BY count(*) DESC, r.service_code) AS rank
            FROM service_requests r JOIN services s ON s.code = r.service_code
           WHERE {where} AND r.districts ? CAST(:layer AS text)
           GROUP BY 1, 2, 3, 4) t
         WHERE rank <= :n ORDER BY district, rank"""
    return _rows(conn, sql, {**params, "layer": layer, "n": int(per_district)})


def crew_workload(conn, f):
    """Per crew: open requests, within SLA, overdue and without an SLA date among them, oldest open
    request's age in days."""
    where, params = _where(f)
    sql = f"""
        SELECT c.code, c.name, count(r.id) AS open,
               count(r.id) FILTER (WHERE r.expected_at >= now()) AS open_within_sla,
               count(r.id) FILTER (WHERE r.expected_at < now()) AS overdue,
               count(r.id) FILTER (WHERE r.expected_at IS NULL) AS open_no_sla,
               round(extract(epoch FROM now() - min(r.requested_at)) / 86400)::int AS oldest_days
          FROM crews c JOIN service_requests r ON r.crew_id = c.id AND r.status <> 'closed'
         WHERE {where}
         GROUP BY c.code, c.name ORDER BY open DESC, c.code"""
    return _rows(conn, sql, params)


def _plain(value):
    """JSON-ready: Decimal → float, dates → ISO text."""
    if isinstance(value, Decimal):
        return float(value)
    return value.isoformat() if hasattr(value, "isoformat") else value


def feature_collection(rows):
    """GeoJSON FeatureCollection from aggregate rows with a `geometry` GeoJSON string column."""
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": json.loads(r["geometry"]),
         "properties": {k: _plain(v) for k, v in r.items() if k != "geometry"}} for r in rows]}
