"""Routing many requests at once, in memory, with the same rules and order as gis.locate's SQL.

Live intake routes inside its one SQL statement; bulk imports route here so that 100k rows do not
cost 100k queries. Both apply a service's rules by ascending priority (then id), first match wins,
falling back to the service's default crew.
"""
import numpy as np
import pandas as pd

from pyproj import Geod
from sqlalchemy import text

_GEOD = Geod(ellps="WGS84")


def _attr_matches(attrs, rule):
    value = (attrs or {}).get(rule.attribute)
    return value is not None and str(value) == rule.value


class Router:
    def __init__(self, conn):
        self.rules = {}
        for r in conn.execute(text("SELECT id, service_code, strategy, layer, district_code, attribute, value, "
                                   "crew_id FROM routing_rules ORDER BY priority, id")):
            self.rules.setdefault(r.service_code, []).append(r)
        self.default = dict(conn.execute(text("SELECT code, default_crew_id FROM services")).all())
        crews = conn.execute(text("SELECT id, code, ST_X(last_position) AS lon, ST_Y(last_position) AS lat "
                                  "FROM crews WHERE on_duty AND last_position IS NOT NULL ORDER BY id")).all()
        self.crews = crews
        self.parcel_attrs = None
        if any(r.strategy == "parcel_attribute" for rules in self.rules.values() for r in rules):
            self.parcel_attrs = dict(conn.execute(text("SELECT parcel_id, attributes FROM parcels")).all())

    def route_many(self, service_codes, where, lons, lats):
        """(crew ids, routed_by) for every row, set-based: per service, each rule in order claims the rows
        still unrouted that it matches (numpy masks over that service's rows; one distance matrix per
        'nearest' rule)."""
        service_codes = pd.Series(np.asarray(service_codes, dtype=object))
        lons, lats = np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)
        crews = np.full(len(service_codes), None, dtype=object)
        routed = np.full(len(service_codes), None, dtype=object)
        for code, rows in service_codes.groupby(service_codes, sort=False, dropna=False).indices.items():
            todo = np.ones(len(rows), dtype=bool)
            layer_codes = {}
            for r in self.rules.get(code, ()):
                if not todo.any():
                    break
                if r.strategy == "district":
                    if where.get(r.layer) is None:
                        continue
                    if r.layer not in layer_codes:
                        layer_codes[r.layer] = where[r.layer][rows]
                    hit = todo & (layer_codes[r.layer] == r.district_code)
                    label = f"rule {r.id}: district {r.layer}={r.district_code}"
                    crews[rows[hit]] = r.crew_id
                elif r.strategy == "parcel_attribute":
                    parcels = where["parcel_id"][rows]
                    matches = {p: _attr_matches((self.parcel_attrs or {}).get(p), r) for p in dict.fromkeys(parcels)}
                    hit = todo & np.array([matches[p] for p in parcels], dtype=bool)
                    label = f"rule {r.id}: parcel {r.attribute}={r.value}"
                    crews[rows[hit]] = r.crew_id
                elif r.strategy == "nearest":
                    pool = [c for c in self.crews if c.code.startswith(r.value)]
                    if not pool:
                        continue
                    hit = todo.copy()
                    at = rows[hit]
                    k = len(pool)
                    _, _, dist = _GEOD.inv(np.repeat(lons[at], k), np.repeat(lats[at], k),
                                           np.tile([c.lon for c in pool], len(at)),
                                           np.tile([c.lat for c in pool], len(at)))
                    nearest = np.argmin(np.asarray(dist).reshape(len(at), k), axis=1)   # first of equals
                    crews[at] = np.array([c.id for c in pool], dtype=object)[nearest]
                    label = f"rule {r.id}: nearest on-duty crew of pool {r.value}"
                else:
                    continue
                routed[rows[hit]] = label
                todo &= ~hit
            default = self.default.get(code)
            crews[rows[todo]] = default
            routed[rows[todo]] = "default crew of service" if default else "unrouted"
        return crews, routed
