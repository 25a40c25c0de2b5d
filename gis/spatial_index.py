"""Locating many points at once in memory: Shapely STRtree over the layers read from PostGIS.

A query per point costs a round-trip; for files and bulk imports we read the polygons once and use
STRtree (millions of points/s). The answer follows the same rules as gis.locate's SQL: a point is in
a polygon when the polygon covers it (boundary included), and a point covered by several districts of
one layer takes the smallest code — so the bulk path and the single-point path agree.
"""
from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy import text


@dataclass
class _Tree:
    geoms: np.ndarray       # polygons, prepared once (their edges indexed for fast point tests)
    codes: np.ndarray       # code of each polygon (parcel_id for parcels)

    def __post_init__(self):
        shapely.prepare(self.geoms)

    def assign(self, point_tree, n):
        """For each of the n points in point_tree, the smallest code among polygons covering it, or None.

        The polygons query a tree of the points (not the other way round): the predicate then runs on
        the prepared polygon, which is what makes this millions of points per second.
        """
        out = np.full(n, None, dtype=object)
        if len(self.codes) == 0 or n == 0:
            return out
        poly_idx, pt_idx = point_tree.query(self.geoms, predicate="covers")
        if len(pt_idx) == 0:
            return out
        hits = np.bincount(pt_idx, minlength=n)
        single = hits[pt_idx] == 1          # the usual case: one polygon covers the point
        out[pt_idx[single]] = self.codes[poly_idx[single]]
        if single.all():
            return out
        poly_idx, pt_idx = poly_idx[~single], pt_idx[~single]   # on a shared edge: smallest code wins
        codes = self.codes[poly_idx]
        order = np.lexsort((codes.astype(str), pt_idx))
        pt_sorted = pt_idx[order]
        first = np.ones(len(pt_sorted), dtype=bool)
        first[1:] = pt_sorted[1:] != pt_sorted[:-1]
        out[pt_sorted[first]] = codes[order][first]
        return out


class LayerIndex:
    """Every boundary, district and parcel polygon in memory, for bulk point-in-polygon.

    The district trees hold the polygons' small pieces (district_parts, migration 0019), as the
    single-point SQL reads them: a piece's box is tight, so a point meets one or two candidates per layer
    instead of every large polygon whose box holds it, and each test walks at most 64 vertices
    (`pin311 locate` on 1,000,000 points: STRtree work 6.2-7.1 -> 4.5-5.5 s, the same answers). A point
    on the cut between two pieces of one district is covered by both: the same code either way. The
    boundary is tested whole, one vectorised pass per polygon over all points (inside())."""

    def __init__(self, conn, with_parcels=True):
        self.districts = {}     # layer → _Tree of its pieces
        self.names = {}         # layer → {code: name}
        rows = conn.execute(text("""
            SELECT layer, code, name, ST_AsBinary(geom) AS wkb FROM district_parts WHERE kind = 'district'
             ORDER BY layer, code, district_id, part"""))
        grouped = {}
        for r in rows:
            wkbs, codes = grouped.setdefault(r.layer, ([], []))
            wkbs.append(bytes(r.wkb))
            codes.append(r.code)
            self.names.setdefault(r.layer, {})[r.code] = r.name
        for layer, (wkbs, codes) in grouped.items():
            self.districts[layer] = _Tree(shapely.from_wkb(wkbs), np.array(codes, dtype=object))
        self.boundary = shapely.from_wkb([bytes(w) for w in conn.execute(text(
            "SELECT ST_AsBinary(d.geom) FROM districts d JOIN layers l ON l.id = d.layer_id "
            "WHERE l.kind = 'boundary'")).scalars()])
        shapely.prepare(self.boundary)
        self.parcels = None
        if with_parcels:
            prow = conn.execute(text("SELECT parcel_id, ST_AsBinary(geom) AS wkb FROM parcels")).all()
            if prow:
                self.parcels = _Tree(shapely.from_wkb([bytes(r.wkb) for r in prow]),
                                     np.array([r.parcel_id for r in prow], dtype=object))

    @property
    def layer_names(self):
        return sorted(self.districts)

    def locate(self, lons, lats, boundary=True):
        """dict: 'inside' (bool array), 'parcel_id' and one code array per district layer.

        boundary=False skips the boundary test ('inside' is then just "has valid coordinates"), for points
        already known to be inside: the bulk import tests the whole file against the boundary first
        (inside()), then locates the rows it keeps chunk by chunk."""
        lons, lats, valid = checked(lons, lats)
        points = shapely.points(np.where(valid, lons, 0.0), np.where(valid, lats, 0.0))
        points[~valid] = None
        tree, n = shapely.STRtree(points), len(points)   # missing points are left out of the tree
        result = {"inside": self.inside(lons, lats) if boundary else valid}
        result["parcel_id"] = self.parcels.assign(tree, n) if self.parcels else np.full(n, None, object)
        for layer, layer_tree in self.districts.items():
            result[layer] = layer_tree.assign(tree, n)
        return result

    def inside(self, lons, lats):
        """Bool array: the point has valid coordinates and the city boundary covers it (True everywhere
        valid when no boundary is loaded). Tested against each prepared boundary polygon without building
        point objects or a tree: for a point, intersecting a polygon is being covered by it."""
        lons, lats, valid = checked(lons, lats)
        if not len(self.boundary):
            return valid
        xs, ys = np.where(valid, lons, 0.0), np.where(valid, lats, 0.0)
        hit = np.zeros(len(lons), dtype=bool)
        for polygon in self.boundary:
            hit |= shapely.intersects_xy(polygon, xs, ys)
        return hit & valid


def checked(lons, lats):
    """The coordinates as float arrays, and which of them are a usable point (finite, within range)."""
    lons = np.asarray(lons, dtype=float)
    lats = np.asarray(lats, dtype=float)
    return lons, lats, np.isfinite(lons) & np.isfinite(lats) & (np.abs(lats) <= 90) & (np.abs(lons) <= 180)
