"""Analyst aggregates over service requests: trend, district backlog and SLA, hot spots, crews.

Every figure is one SQL statement (GROUP BY in PostgreSQL), never a Python loop over requests, so a
year of data answers in milliseconds. Staff-only: reads service_requests directly (no contacts).
Filters (`Filters`): requested_at in [start, end), one service code, one district (layer + code).
Days and weeks are the city's (sessions run in its time zone, gis.db), both in filters and in buckets.

SLA: a request "met" its SLA when it closed at or before expected_at; it is "overdue" while open past
expected_at. Compliance = met / (closed with an expected_at).
"""
import json
import re
from dataclasses import dataclass
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


def check_layer(conn, layer):
    if layer not in district_layers(conn):
        raise InvalidInput(f"no district layer {str(layer)[:64]!r}", field="district_layer")
    return layer


def over_time(conn, f, unit="week"):
    """[{period, service_code, service_name, requests}] per day or week and category."""
    if unit not in ("day", "week", "month"):
        raise InvalidInput("interval must be day, week or month", field="interval")
    where, params = _where(f)
    sql = f"""
        SELECT date_trunc(:unit, r.requested_at)::date AS period, r.service_code,
               s.name AS service_name, count(*) AS requests
          FROM service_requests r JOIN services s ON s.code = r.service_code
         WHERE {where}
         GROUP BY 1, 2, 3 ORDER BY 1, 4 DESC"""
    return _rows(conn, sql, {**params, "unit": unit})


_BY_DISTRICT = """
WITH agg AS (
  SELECT r.districts -> CAST(:layer AS text) ->> 'code' AS code,
         count(*) AS requests,
         count(*) FILTER (WHERE r.status <> 'closed') AS open,
         count(*) FILTER (WHERE r.status <> 'closed' AND r.expected_at < now()) AS overdue,
         count(*) FILTER (WHERE r.status = 'closed' AND r.expected_at IS NOT NULL) AS closed_with_sla,
         count(*) FILTER (WHERE r.status = 'closed' AND r.closed_at <= r.expected_at) AS met_sla
    FROM service_requests r WHERE {where}
   GROUP BY 1)
SELECT d.code, d.name, coalesce(a.requests, 0) AS requests, coalesce(a.open, 0) AS open,
       coalesce(a.overdue, 0) AS overdue, coalesce(a.closed_with_sla, 0) AS closed_with_sla,
       coalesce(a.met_sla, 0) AS met_sla,
       round(100.0 * a.met_sla / nullif(a.closed_with_sla, 0), 1) AS sla_pct{geom}
  FROM districts d JOIN layers l ON l.id = d.layer_id AND l.name = :layer
  LEFT JOIN agg a ON a.code = d.code
 ORDER BY d.code"""


def by_district(conn, f, layer, geometry=False):
    """Per district of `layer`: requests, open backlog, overdue, SLA met/closed and compliance %."""
    check_layer(conn, layer)
    where, params = _where(f)
    geom = ", ST_AsGeoJSON(ST_SimplifyPreserveTopology(d.geom, 0.0001), 6) AS geometry" if geometry else ""
    return _rows(conn, _BY_DISTRICT.format(where=where, geom=geom), {**params, "layer": layer})


def hot_spots(conn, f, cell_m=250, min_count=1, open_only=False):
    """Square cells of cell_m metres (EPSG:3857) with their request count, busiest first."""
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
                 count(*) FILTER (WHERE status <> 'closed') AS open
            FROM (SELECT ST_Transform(r.geom, 3857) AS p, r.status FROM service_requests r WHERE {where}) x
           GROUP BY 1, 2 HAVING count(*) >= :min_count)
        SELECT i::bigint AS i, j::bigint AS j, requests, open,
               ST_AsGeoJSON(ST_Transform(ST_MakeEnvelope(i * :cell, j * :cell, (i + 1) * :cell,
                                                          (j + 1) * :cell, 3857), 4326), 6) AS geometry
          FROM c ORDER BY requests DESC, i, j"""
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
    """Per crew: open requests, overdue among them, oldest open request's age in days."""
    where, params = _where(f)
    sql = f"""
        SELECT c.code, c.name, count(r.id) AS open,
               count(r.id) FILTER (WHERE r.expected_at < now()) AS overdue,
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
