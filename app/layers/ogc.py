"""OGC API – Features, Part 1 core with GeoJSON (and CSV export) under /ogc/."""
import csv
import io
import json
from datetime import date, datetime

from flask import Response, request, url_for

from app.extensions import db
from app.layers import bp
from gis import features
from gis.errors import InvalidInput, NotFound

GEOJSON = "application/geo+json"
DEFAULT_LIMIT = 100
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
RESERVED = {"bbox", "datetime", "limit", "offset", "f", "bbox-crs", "crs", "properties"}


def _default(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _json(body, content_type="application/json"):
    return Response(json.dumps(body, default=_default), content_type=content_type)


def _url(endpoint, **values):
    return url_for(endpoint, _external=True, **values)


@bp.get("/ogc")
@bp.get("/ogc/")
def ogc_landing():
    return _json({
        "title": "pin311 map layers", "description": "311 service requests and the city's map layers",
        "links": [
            {"href": _url("layers.ogc_landing"), "rel": "self", "type": "application/json", "title": "this document"},
            {"href": _url("layers.ogc_conformance"), "rel": "conformance", "type": "application/json",
             "title": "conformance"},
            {"href": _url("layers.ogc_collections"), "rel": "data", "type": "application/json",
             "title": "collections"},
        ]})


@bp.get("/ogc/conformance")
def ogc_conformance():
    return _json({"conformsTo": CONFORMANCE})


def _describe(conn, coll):
    items = _url("layers.ogc_items", name=coll.name)
    bbox = features.extent(conn, coll) or (-180, -90, 180, 90)
    return {
        "id": coll.name, "title": coll.title, "description": coll.description, "itemType": "feature",
        "crs": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
        "extent": {"spatial": {"bbox": [list(bbox)], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
        "links": [
            {"href": _url("layers.ogc_collection", name=coll.name), "rel": "self", "type": "application/json"},
            {"href": items, "rel": "items", "type": GEOJSON, "title": "features"},
            {"href": items + "?f=csv", "rel": "alternate", "type": "text/csv", "title": "CSV export"},
        ]}


@bp.get("/ogc/collections")
def ogc_collections():
    conn = db.connection()
    colls = features.collections(conn)
    return _json({"links": [{"href": _url("layers.ogc_collections"), "rel": "self", "type": "application/json"}],
                  "collections": [_describe(conn, c) for c in colls.values()]})


@bp.get("/ogc/collections/<name>")
def ogc_collection(name):
    conn = db.connection()
    return _json(_describe(conn, features.get_collection(conn, name)))


def _int_arg(name, default, low, high):
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    if not raw.isdigit():
        raise InvalidInput(f"{name} must be a whole number", field=name)
    return max(low, min(int(raw), high))


def _feature(coll, feat):
    return {"type": "Feature", "id": feat["id"], "geometry": feat["geometry"], "properties": feat["properties"]}


@bp.get("/ogc/collections/<name>/items")
def ogc_items(name):
    conn = db.connection()
    coll = features.get_collection(conn, name)
    fmt = request.args.get("f", "json").lower()
    limit = _int_arg("limit", features.MAX_LIMIT if fmt == "csv" else DEFAULT_LIMIT, 1, features.MAX_LIMIT)
    offset = _int_arg("offset", 0, 0, 10 ** 9)
    where = [features.datetime_condition(coll, request.args.get("datetime"))]
    for key, value in request.args.items():   # property filters: field=value
        if key not in RESERVED and key in coll.fields:
            where.append(coll.column(key) == features.typed(coll, key, value))
    bbox = features.parse_bbox(request.args.get("bbox"))
    feats, matched = features.query(conn, coll, where, bbox, limit=limit, offset=offset)
    if fmt == "csv":
        return _csv(coll, feats)
    if fmt not in ("json", "geojson"):
        raise InvalidInput("f must be json or csv", field="f")
    args = {k: v for k, v in request.args.items() if k not in ("offset", "limit")}
    links = [{"href": _url("layers.ogc_items", name=name, offset=offset, limit=limit, **args), "rel": "self",
              "type": GEOJSON}]
    if offset + len(feats) < matched:
        links.append({"href": _url("layers.ogc_items", name=name, offset=offset + limit, limit=limit, **args),
                      "rel": "next", "type": GEOJSON, "title": "next page"})
    if offset > 0:
        links.append({"href": _url("layers.ogc_items", name=name, offset=max(0, offset - limit), limit=limit,
                                   **args), "rel": "prev", "type": GEOJSON, "title": "previous page"})
    return _json({"type": "FeatureCollection", "features": [_feature(coll, f) for f in feats],
                  "numberMatched": matched, "numberReturned": len(feats),
                  "timeStamp": datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"), "links": links}, GEOJSON)


def _csv(coll, feats):
    out = io.StringIO()
    names = list(coll.fields)
    point = coll.geometry_type == "Point"
    writer = csv.writer(out)
    writer.writerow(names + (["longitude", "latitude"] if point else []))
    for f in feats:
        row = [_default(v) if isinstance(v, (date, datetime)) else v for v in (f["properties"][n] for n in names)]
        if point:
            coords = (f["geometry"] or {}).get("coordinates") or [None, None]
            row += coords[:2]
        writer.writerow(row)
    return Response(out.getvalue(), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{coll.name}.csv"'})


@bp.get("/ogc/collections/<name>/items/<fid>")
def ogc_item(name, fid):
    conn = db.connection()
    coll = features.get_collection(conn, name)
    value = features.typed(coll, coll.id_field, fid)
    feats, _ = features.query(conn, coll, [coll.column(coll.id_field) == value], limit=1, count=False)
    if not feats:
        raise NotFound(f"no feature {fid[:40]!r} in {name}")
    body = _feature(coll, feats[0])
    body["links"] = [{"href": _url("layers.ogc_item", name=name, fid=fid), "rel": "self", "type": GEOJSON},
                     {"href": _url("layers.ogc_collection", name=name), "rel": "collection",
                      "type": "application/json"}]
    return _json(body, GEOJSON)
