"""Feature collections behind OGC API – Features and the FeatureServer API: the public requests and
every map layer, queried with SQLAlchemy Core (bound parameters, fields from a whitelist only).

`collections(conn)` lists them; `query(conn, coll, ...)` returns (features, number matched).
"""
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import BigInteger, Integer, Text, and_, column, func, literal, select, table, text

from gis.errors import InvalidInput, NotFound
from gis.public import in_envelope, public_requests as pr

_layers = table("layers", column("id", Integer), column("name", Text), column("kind", Text))
_districts = table("districts", column("id", BigInteger), column("layer_id", Integer), column("code", Text),
                   column("name", Text), column("geom"))
_parcels = table("parcels", column("id", BigInteger), column("layer_id", Integer), column("parcel_id", Text),
                 column("address", Text), column("geom"))

MAX_LIMIT = 10000


@dataclass
class Collection:
    name: str
    title: str
    geometry_type: str                   # GeoJSON type
    fields: dict                         # name -> (kind, SQL expression); kind: oid|int|string|date|bool
    geom: object
    id_field: str                        # the OGC feature id
    base_where: object = None
    datetime_field: str | None = None
    envelope: object = None              # f(minx, miny, maxx, maxy) -> condition
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def oid_field(self):
        return next(n for n, (k, _) in self.fields.items() if k == "oid")

    def column(self, name):
        try:
            return self.fields[name][1]
        except KeyError:
            raise InvalidInput(f"{self.name} has no field {str(name)[:60]!r}", field=str(name)[:60]) from None

    def kind(self, name):
        self.column(name)
        return self.fields[name][0]

    def in_envelope(self, minx, miny, maxx, maxy):
        if self.envelope is not None:
            return self.envelope(minx, miny, maxx, maxy)
        return func.ST_Intersects(self.geom, func.ST_MakeEnvelope(minx, miny, maxx, maxy, 4326))


def _requests(district_layers):
    f = {"objectid": ("oid", pr.c.objectid)}
    for name in ("public_id", "service_code", "service_name", "service_group", "status", "closure_reason"):
        f[name] = ("string", pr.c[name])
    for name in ("requested_at", "updated_at", "expected_at", "closed_at"):
        f[name] = ("date", pr.c[name])
    f["address"] = ("string", pr.c.address)
    f["coarsened"] = ("bool", pr.c.coarsened)
    f["media_url"] = ("string", pr.c.media_url)
    for layer in district_layers:           # one flat column per district layer: its code
        f[layer] = ("string", pr.c.districts.op("->>")(literal(layer, Text)))
    return Collection("requests", "Service requests (public view)", "Point", f, pr.c.geom, "public_id",
                      datetime_field="requested_at", envelope=in_envelope,
                      description="311 service requests: no personal data; sensitive categories on a 250 m grid")


def _district(name, kind):
    d = _districts
    f = {"objectid": ("oid", d.c.id), "code": ("string", d.c.code), "name": ("string", d.c.name)}
    where = d.c.layer_id == select(_layers.c.id).where(_layers.c.name == name).scalar_subquery()
    return Collection(name, name.replace("_", " ").title(), "MultiPolygon", f, d.c.geom, "code", where,
                      description=f"{kind} layer {name}")


def _parcel(name):
    p = _parcels
    f = {"objectid": ("oid", p.c.id), "parcel_id": ("string", p.c.parcel_id), "address": ("string", p.c.address)}
    where = p.c.layer_id == select(_layers.c.id).where(_layers.c.name == name).scalar_subquery()
    return Collection(name, name.replace("_", " ").title(), "MultiPolygon", f, p.c.geom, "objectid", where,
                      description="parcels")


def collections(conn):
    """{name: Collection}: requests first, then every boundary, district and parcel layer."""
    rows = conn.execute(text("SELECT name, kind FROM layers WHERE kind IN ('boundary', 'district', 'parcel') "
                             "ORDER BY kind <> 'boundary', kind, name")).all()
    out = {"requests": _requests([n for n, k in rows if k == "district"])}
    for name, kind in rows:
        out[name] = _parcel(name) if kind == "parcel" else _district(name, kind)
    return out


def get_collection(conn, name):
    found = collections(conn).get(name)
    if found is None:
        raise NotFound(f"no collection {str(name)[:60]!r}")
    return found


def typed(coll, name, raw):
    """A query-string value as the field's type (InvalidInput when it is not)."""
    kind = coll.kind(name)
    try:
        if kind in ("oid", "int"):
            return int(raw)
        if kind == "bool":
            if str(raw).lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return str(raw).lower() in ("true", "1")
        if kind == "date":
            return day_start(parse_instant(raw))
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"{name}: {str(raw)[:40]!r} is not a valid {kind}", field=name) from None
    return str(raw)


def parse_instant(raw):
    """An Esri or OGC date value: an aware datetime, or a date. A value without a zone is UTC, whatever
    the session's (the city's) zone: the ArcGIS REST API reads it so when a service declares no time
    reference, and our layers publish instants in UTC (epoch milliseconds, RFC 3339 with Z)."""
    if isinstance(raw, (int, float)):          # Esri: epoch milliseconds
        return datetime.fromtimestamp(raw / 1000, tz=timezone.utc)
    value = str(raw).strip().replace("Z", "+00:00")
    if "T" in value or " " in value:
        instant = datetime.fromisoformat(value)
        return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)
    return date.fromisoformat(value)


def day_start(value):
    """A date as the instant its UTC day starts; an instant as itself."""
    if type(value) is not date:
        return value
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)


def datetime_condition(coll, raw):
    """OGC `datetime`: an instant or an interval a/b with open ends (.. or empty); a date is a UTC day."""
    if not raw:
        return None
    if coll.datetime_field is None:
        return None
    col = coll.column(coll.datetime_field)
    try:
        if "/" in raw:
            start, end = (p.strip() for p in raw.split("/", 1))
            conds = []
            if start not in ("", ".."):
                conds.append(col >= day_start(parse_instant(start)))
            if end not in ("", ".."):
                instant = parse_instant(end)
                conds.append(col < day_start(instant + timedelta(days=1)) if type(instant) is date
                             else col <= instant)
            return and_(*conds) if conds else None
        instant = parse_instant(raw)
    except (ValueError, OverflowError):
        raise InvalidInput("datetime must be an RFC 3339 instant or interval (a/b, ../b, a/..)",
                           field="datetime") from None
    if type(instant) is date:
        return and_(col >= day_start(instant), col < day_start(instant + timedelta(days=1)))
    return col == instant


def parse_bbox(raw):
    """'minx,miny,maxx,maxy' (EPSG:4326) -> tuple of floats, or None."""
    if raw in (None, ""):
        return None
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    try:
        values = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise InvalidInput("bbox must be four numbers: minx,miny,maxx,maxy", field="bbox") from None
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or any(v != v or abs(v) > 1e9 for v in values):
        raise InvalidInput("bbox must be four numbers: minx,miny,maxx,maxy", field="bbox")
    minx, miny, maxx, maxy = values
    if minx > maxx or miny > maxy:
        raise InvalidInput("bbox: min must not exceed max", field="bbox")
    return minx, miny, maxx, maxy


def query(conn, coll, where=(), bbox=None, limit=100, offset=0, order_by=(), out_fields=None,
          with_geometry=True, count=True, precision=7, esri_rings=False):
    """(features, number matched) where each feature is {"id", "properties", "geometry" (GeoJSON dict)}.

    `where` is a list of SQLAlchemy conditions built from coll's own columns; `order_by` a list of
    (field, descending); `limit` None for count only.
    """
    cond = _condition(coll, where, bbox)
    matched = None
    if count or limit is None:
        matched = conn.execute(select(func.count()).select_from(coll.geom.table).where(cond)).scalar()
    if limit is None:
        return [], matched
    names = list(out_fields or coll.fields)
    for n in names:
        coll.column(n)
    oid = coll.oid_field
    cols = [coll.column(n).label(n) for n in dict.fromkeys([oid, coll.id_field, *names])]
    if with_geometry:  # Esri wants outer rings clockwise, holes counter-clockwise
        geom = func.ST_ForcePolygonCW(coll.geom) if esri_rings else coll.geom
        cols.append(func.ST_AsGeoJSON(geom, precision).label("_geometry"))
    order = [coll.column(n).desc() if desc else coll.column(n) for n, desc in order_by] + [coll.column(oid)]
    stmt = select(*cols).select_from(coll.geom.table).where(cond).order_by(*order)
    stmt = stmt.limit(max(0, min(int(limit), MAX_LIMIT))).offset(max(0, int(offset)))
    feats = []
    for row in conn.execute(stmt):
        m = dict(row._mapping)
        geom = m.pop("_geometry", None)
        feats.append({"id": m[coll.id_field], "oid": m[oid],
                      "properties": {n: m[n] for n in names},
                      "geometry": json.loads(geom) if geom else None})
    return feats, matched


def rows(conn, coll, where=(), bbox=None, limit=None, offset=0, chunk=2000):
    """Every matching feature as a dict of its fields (plus `longitude`, `latitude` for points), in
    object id order, however many there are: a server-side cursor hands them over `chunk` at a time,
    so memory stays flat for a million rows. `limit` None means all."""
    cols = [coll.column(n).label(n) for n in coll.fields]
    if coll.geometry_type == "Point":
        cols += [func.ST_X(coll.geom).label("longitude"), func.ST_Y(coll.geom).label("latitude")]
    stmt = (select(*cols).select_from(coll.geom.table).where(_condition(coll, where, bbox))
            .order_by(coll.column(coll.oid_field)).offset(max(0, int(offset))))
    if limit is not None:
        stmt = stmt.limit(max(0, int(limit)))
    result = conn.execute(stmt, execution_options={"stream_results": True, "yield_per": chunk})
    try:
        for row in result:
            yield row._asdict()
    finally:
        result.close()


# Esri statisticType -> SQL aggregate (stddev and var of a sample, as ArcGIS computes them).
AGGREGATES = {"count": func.count, "sum": func.sum, "min": func.min, "max": func.max, "avg": func.avg,
              "stddev": func.stddev_samp, "var": func.var_samp}


def statistics(conn, coll, where=(), bbox=None, stats=(), group_by=(), order_by=(), limit=None, offset=0):
    """One row per group (one row without `group_by`) with each statistic, in one GROUP BY.

    `stats` are (aggregate, field or "*", output name) with aggregate a key of AGGREGATES and names already
    checked by the caller; `order_by` (name, descending) names group fields or outputs."""
    groups = {name: coll.column(name) for name in group_by}
    outputs = {out: func.count() if field == "*" else AGGREGATES[kind](coll.column(field))
               for kind, field, out in stats}
    by_name = {**groups, **outputs}
    order = [by_name[n].desc() if desc else by_name[n] for n, desc in order_by] + list(groups.values())
    stmt = (select(*[e.label(n) for n, e in by_name.items()]).select_from(coll.geom.table)
            .where(_condition(coll, where, bbox)).group_by(*groups.values()).order_by(*order)
            .offset(max(0, int(offset))))
    if limit is not None:
        stmt = stmt.limit(max(0, int(limit)))
    return [row._asdict() for row in conn.execute(stmt)]


def _condition(coll, where, bbox):
    conds = [c for c in where if c is not None]
    if coll.base_where is not None:
        conds.append(coll.base_where)
    if bbox is not None:
        conds.append(coll.in_envelope(*bbox))
    return and_(*conds) if conds else literal(True)


def object_ids(conn, coll, where=(), bbox=None, order_by=()):
    oid = coll.column(coll.oid_field)
    stmt = select(oid).select_from(coll.geom.table).where(_condition(coll, where, bbox))
    stmt = stmt.order_by(*[coll.column(n).desc() if d else coll.column(n) for n, d in order_by], oid)
    return list(conn.execute(stmt).scalars())


def extent(conn, coll):
    """(minx, miny, maxx, maxy) of the collection, or None when empty.

    Requests all lie inside the city, so their extent is the boundary's (no scan of a million rows).
    """
    if coll.name == "requests":
        row = conn.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                                "FROM (SELECT ST_Extent(d.geom) e "
                                "FROM districts d JOIN layers l ON l.id = d.layer_id WHERE l.kind = 'boundary') x")
                           ).first()
        if row is not None and row[0] is not None:
            return tuple(float(v) for v in row)
    stmt = select(func.ST_XMin(func.ST_Extent(coll.geom)), func.ST_YMin(func.ST_Extent(coll.geom)),
                  func.ST_XMax(func.ST_Extent(coll.geom)), func.ST_YMax(func.ST_Extent(coll.geom))
                  ).select_from(coll.geom.table)
    if coll.base_where is not None:
        stmt = stmt.where(coll.base_where)
    row = conn.execute(stmt).first()
    return None if row is None or row[0] is None else tuple(float(v) for v in row)
