"""Routing many requests at once, in memory, with the same rules and order as gis.locate's SQL.

Live intake routes inside its one SQL statement; bulk imports route here so that 100k rows do not
cost 100k queries. Both apply a service's rules by ascending priority (then id), first match wins,
falling back to the service's default crew.
"""
import numpy as np

from pyproj import Geod
from sqlalchemy import text

_GEOD = Geod(ellps="WGS84")


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

    def _nearest(self, prefix, lon, lat):
        pool = [c for c in self.crews if c.code.startswith(prefix)]
        if not pool:
            return None
        _, _, dist = _GEOD.inv([lon] * len(pool), [lat] * len(pool), [c.lon for c in pool], [c.lat for c in pool])
        return pool[int(np.argmin(dist))].id

    def route_one(self, service_code, where, i, lon, lat):
        for r in self.rules.get(service_code, ()):
            if r.strategy == "district":
                codes = where.get(r.layer)
                if codes is not None and codes[i] == r.district_code:
                    return r.crew_id, f"rule {r.id}: district {r.layer}={r.district_code}"
            elif r.strategy == "parcel_attribute":
                attrs = (self.parcel_attrs or {}).get(where["parcel_id"][i]) or {}
                if attrs.get(r.attribute) is not None and str(attrs.get(r.attribute)) == r.value:
                    return r.crew_id, f"rule {r.id}: parcel {r.attribute}={r.value}"
            elif r.strategy == "nearest":
                crew = self._nearest(r.value, lon, lat)
                if crew is not None:
                    return crew, f"rule {r.id}: nearest on-duty crew of pool {r.value}"
        default = self.default.get(service_code)
        return default, ("default crew of service" if default else "unrouted")

    def route_many(self, service_codes, where, lons, lats):
        crews = np.empty(len(service_codes), dtype=object)
        routed = np.empty(len(service_codes), dtype=object)
        for i, code in enumerate(service_codes):
            crews[i], routed[i] = self.route_one(code, where, i, lons[i], lats[i])
        return crews, routed


