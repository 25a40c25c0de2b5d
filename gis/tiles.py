"""Mapbox vector tiles built by ST_AsMVT: public requests (with filters) and every map layer.

`render(conn, layer, z, x, y, filters)` returns the tile bytes. Tiles of `requests` read only the
public view (gis.public), so they never carry contacts and show sensitive services coarsened.
Below CLUSTER_BELOW_ZOOM requests come as clusters (one point per 64-unit cell with `count` and
`open`), so a city-wide tile stays small; from that zoom on, one point per request.

`TileCache` keys tiles on the data version (data_versions, bumped by triggers at commit), so any
number of workers can each keep a cache and never serve a tile older than the data it was cut from.
"""
import hashlib
import re
import threading
import time
from dataclasses import dataclass
from datetime import date

from cachetools import TTLCache
from sqlalchemy import text

from gis.errors import InvalidInput, NotFound
from gis.models import STATUSES
from gis.public import data_version

EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 22
CLUSTER_BELOW_ZOOM = 14
CLUSTER_CELL = 64           # tile units: 64 cells across a tile
PARCELS_MIN_ZOOM = 14
MAP_LAYER_KINDS = ("boundary", "district", "parcel")

_FILTER_SQL = """
   AND (CAST(:services AS text[]) IS NULL OR p.service_code = ANY(CAST(:services AS text[])))
   AND (CAST(:groups AS text[]) IS NULL OR p.service_group = ANY(CAST(:groups AS text[])))
   AND (CAST(:statuses AS text[]) IS NULL OR p.status = ANY(CAST(:statuses AS text[])))
   AND (CAST(:since AS date) IS NULL OR p.requested_at >= CAST(:since AS date))
   AND (CAST(:until AS date) IS NULL OR p.requested_at < CAST(:until AS date) + 1)
   AND (CAST(:recent_days AS int) IS NULL OR p.status <> 'closed'
        OR p.closed_at > now() - make_interval(days => CAST(:recent_days AS int)))"""

_REQUEST_ROWS = f"""
WITH bounds AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
box AS (SELECT env, ST_Transform(ST_Expand(env, (ST_XMax(env) - ST_XMin(env)) * {{buffer}} / {EXTENT}), 4326) AS env4326
          FROM bounds),
rows AS (
  SELECT p.public_id, p.service_code, p.service_name, p.status, to_char(p.requested_at, 'YYYY-MM-DD') AS requested,
         p.coarsened, ST_AsMVTGeom(ST_Transform(p.geom, 3857), box.env, {EXTENT}, {{buffer}}, true) AS geom
    FROM public_requests p, box
   WHERE p.geom && box.env4326 {_FILTER_SQL}
)"""

# ST_AsMVT skips rows whose geometry ST_AsMVTGeom clipped away (NULL): no outer filter, which
# would make PostgreSQL compute ST_AsMVTGeom twice per row.
REQUESTS_POINTS = text(_REQUEST_ROWS.format(buffer=BUFFER) + """
SELECT ST_AsMVT(rows, 'requests', 4096, 'geom') FROM rows""")

# Clusters by arithmetic on tile coordinates (no ST_AsMVTGeom per point: a z12 tile can hold
# hundreds of thousands of requests). No buffer: a request is counted in exactly one tile.
REQUESTS_CLUSTERS = text(f"""
WITH bounds AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
box AS (SELECT ST_XMin(env) AS x0, ST_YMax(env) AS y1, (ST_XMax(env) - ST_XMin(env)) / {EXTENT} AS unit,
               ST_Transform(env, 4326) AS env4326 FROM bounds),
pts AS (
  SELECT (ST_X(q.g) - box.x0) / box.unit AS tx, (box.y1 - ST_Y(q.g)) / box.unit AS ty, q.status
    FROM box, LATERAL (SELECT ST_Transform(p.geom, 3857) AS g, p.status FROM public_requests p
                        WHERE p.geom && box.env4326 {_FILTER_SQL}) q
),
cells AS (
  SELECT ST_MakePoint(round(avg(tx)), round(avg(ty))) AS geom, count(*) AS count,
         count(*) FILTER (WHERE status <> 'closed') AS open
    FROM pts WHERE tx >= 0 AND tx < {EXTENT} AND ty >= 0 AND ty < {EXTENT}
   GROUP BY floor(tx / {CLUSTER_CELL}), floor(ty / {CLUSTER_CELL})
)
SELECT ST_AsMVT(cells, 'requests', {EXTENT}, 'geom') FROM cells""")

DISTRICTS = text(f"""
WITH box AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
rows AS (
  SELECT d.code, d.name, ST_AsMVTGeom(ST_Transform(d.geom, 3857), box.env, {EXTENT}, {BUFFER}, true) AS geom
    FROM districts d JOIN layers l ON l.id = d.layer_id, box
   WHERE l.name = :layer AND d.geom && ST_Transform(box.env, 4326)
)
SELECT ST_AsMVT(rows, :layer, 4096, 'geom') FROM rows WHERE geom IS NOT NULL""")

PARCELS = text(f"""
WITH box AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
rows AS (
  SELECT p.parcel_id, p.address, ST_AsMVTGeom(ST_Transform(p.geom, 3857), box.env, {EXTENT}, {BUFFER}, true) AS geom
    FROM parcels p JOIN layers l ON l.id = p.layer_id, box
   WHERE l.name = :layer AND p.geom && ST_Transform(box.env, 4326)
)
SELECT ST_AsMVT(rows, :layer, 4096, 'geom') FROM rows WHERE geom IS NOT NULL""")


@dataclass(frozen=True)
class Filters:
    """Filters of the requests layer; hashable, so it is part of the cache key."""
    services: tuple = ()
    groups: tuple = ()
    statuses: tuple = ()
    since: date | None = None
    until: date | None = None
    recent_days: int | None = None

    def params(self):
        return {"services": list(self.services) or None, "groups": list(self.groups) or None,
                "statuses": list(self.statuses) or None, "since": self.since, "until": self.until,
                "recent_days": self.recent_days}


_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _list(raw, name, pattern=None, allowed=None, max_items=50):
    items = tuple(sorted({v.strip() for v in (raw or "").split(",") if v.strip()}))
    if len(items) > max_items:
        raise InvalidInput(f"{name}: at most {max_items} values", field=name)
    for v in items:
        if (pattern and not pattern.match(v)) or (allowed and v not in allowed) or len(v) > 100:
            raise InvalidInput(f"{name}: {v[:40]!r} is not a valid value", field=name)
    return items


def _date(raw, name):
    if not raw:
        return None
    try:
        return date.fromisoformat(str(raw).strip()[:10])
    except ValueError:
        raise InvalidInput(f"{name} must be a date YYYY-MM-DD", field=name) from None


def parse_filters(args):
    """Filters from query arguments: service, group, status (comma lists), since, until, recent_days."""
    recent = args.get("recent_days")
    if recent not in (None, ""):
        if not str(recent).isdigit() or int(recent) > 3650:
            raise InvalidInput("recent_days must be a whole number of days (0-3650)", field="recent_days")
        recent = int(recent)
    else:
        recent = None
    return Filters(services=_list(args.get("service"), "service", _CODE),
                   groups=_list(args.get("group"), "group"),
                   statuses=_list(args.get("status"), "status", allowed=STATUSES),
                   since=_date(args.get("since"), "since"), until=_date(args.get("until"), "until"),
                   recent_days=recent)


def check_tile(z, x, y):
    if not (0 <= z <= MAX_ZOOM) or not (0 <= x < 2 ** z) or not (0 <= y < 2 ** z):
        raise NotFound(f"no tile {z}/{x}/{y}: zoom 0-{MAX_ZOOM}, x and y 0-2^zoom-1")


def map_layers(conn):
    """{layer name: kind} of the layers served as tiles besides `requests`."""
    rows = conn.execute(text("SELECT name, kind FROM layers WHERE kind = ANY(:k) ORDER BY name"),
                        {"k": list(MAP_LAYER_KINDS)})
    return {name: kind for name, kind in rows}


def source_of(layer):
    return "requests" if layer == "requests" else "layers"


def render(conn, layer, z, x, y, filters=Filters(), kind=None):
    """The MVT bytes of one tile (may be empty). Raises NotFound for an unknown layer or tile."""
    check_tile(z, x, y)
    tile = {"z": z, "x": x, "y": y}
    if layer == "requests":
        sql = REQUESTS_CLUSTERS if z < CLUSTER_BELOW_ZOOM else REQUESTS_POINTS
        return bytes(conn.execute(sql, {**tile, **filters.params()}).scalar() or b"")
    kind = kind or map_layers(conn).get(layer)
    if kind is None:
        raise NotFound(f"no map layer {layer!r}")
    if kind == "parcel":
        if z < PARCELS_MIN_ZOOM:
            return b""
        return bytes(conn.execute(PARCELS, {**tile, "layer": layer}).scalar() or b"")
    return bytes(conn.execute(DISTRICTS, {**tile, "layer": layer}).scalar() or b"")


class TileCache:
    """Tiles by (layer, z, x, y, filters, data version), bounded in bytes, entries kept `ttl` seconds.

    The TTL only bounds filters relative to today (recent_days); data changes are caught by the
    version. The version itself is re-read at most every `version_ttl` seconds per worker.
    """

    def __init__(self, max_bytes=64 * 1024 * 1024, ttl=300, version_ttl=1.0):
        self._tiles = TTLCache(maxsize=max_bytes, ttl=ttl, getsizeof=lambda v: len(v) + 100)
        self._versions = {}
        self._version_ttl = version_ttl
        self._lock = threading.Lock()

    def version(self, connect, source):
        """The data version of `source`; `connect()` gives a connection, called only when it is re-read."""
        now = time.monotonic()
        seen = self._versions.get(source)
        if seen and now - seen[1] < self._version_ttl:
            return seen[0]
        value = data_version(connect(), source)
        self._versions[source] = (value, now)
        return value

    def key(self, connect, layer, z, x, y, filters):
        day = date.today().isoformat() if filters.recent_days is not None else ""
        return (layer, z, x, y, filters, self.version(connect, source_of(layer)), day)

    @staticmethod
    def etag(key):
        return hashlib.sha1(repr(key).encode()).hexdigest()[:20]

    def get(self, key):
        with self._lock:
            return self._tiles.get(key)

    def put(self, key, data):
        with self._lock:
            if len(data) < self._tiles.maxsize:
                self._tiles[key] = data

    def clear(self):
        with self._lock:
            self._tiles.clear()
            self._versions.clear()
