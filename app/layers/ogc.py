"""OGC API – Features, Part 1 core with GeoJSON (and CSV export) under /ogc/, its OpenAPI document and
each collection's queryables (Part 3)."""
import csv
import io
import json
from datetime import date, datetime

from flask import Response, request, url_for

from app.extensions import db
from app.layers import bp, ogc_openapi
from app.layers.ogc_openapi import COMMON, CRS84, GEOJSON, OPENAPI_TYPE, SCHEMA_TYPE
from gis import features
from gis.errors import InvalidInput, NotFound

DEFAULT_LIMIT = 100
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
]
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
CSV_ROWS_PER_WRITE = 1000


def _default(value):
    if isinstance(value, datetime):
        # to the millisecond: GDAL holds seconds as a float and pyogrio rounds them to milliseconds, so
        # 13.9996 s became microsecond 1,000,000 and failed the whole read
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, date):
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
            {"href": _url("layers.ogc_api"), "rel": "service-desc", "type": OPENAPI_TYPE,
             "title": "the API definition (OpenAPI 3.0)"},
            {"href": _url("layers.ogc_conformance"), "rel": "conformance", "type": "application/json",
             "title": "conformance"},
            {"href": _url("layers.ogc_collections"), "rel": "data", "type": "application/json",
             "title": "collections"},
        ]})


@bp.get("/ogc/conformance")
def ogc_conformance():
    return _json({"conformsTo": CONFORMANCE})


@bp.get("/ogc/api")
def ogc_api():
    conn = db.connection()
    doc = ogc_openapi.document(features.collections(conn), _url("layers.ogc_landing").rstrip("/"),
                               DEFAULT_LIMIT, features.MAX_LIMIT)
    return _json(doc, OPENAPI_TYPE)


@bp.get("/ogc/collections/<name>/queryables")
def ogc_queryables(name):
    coll = features.get_collection(db.connection(), name)
    return _json(ogc_openapi.queryables(coll, _url("layers.ogc_queryables", name=name)), SCHEMA_TYPE)


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
            {"href": _url("layers.ogc_queryables", name=coll.name), "rel": QUERYABLES_REL, "type": SCHEMA_TYPE,
             "title": "the properties usable as filters"},
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


def _selection(coll):
    """(conditions, bbox, property names) from the query string. A parameter that is neither one of
    Part 1's nor a property of the collection is refused (400), as Part 1 asks: ignoring `stauts=open`
    would answer with every feature as if it were the filtered few."""
    for key in request.args:
        if key not in COMMON and key not in coll.fields:
            raise InvalidInput(f"unknown parameter {key[:40]!r}: use {', '.join(COMMON)} or a property of "
                               f"{coll.name} (see its queryables)", field=key[:40])
    for key in ("crs", "bbox-crs"):
        if request.args.get(key) not in (None, "", CRS84):
            raise InvalidInput(f"{key}: only {CRS84} is offered", field=key)
    where = [features.datetime_condition(coll, request.args.get("datetime"))]
    for key, value in request.args.items():   # property filters: field=value
        if key in coll.fields:
            where.append(coll.column(key) == features.typed(coll, key, value))
    names = [n.strip() for n in (request.args.get("properties") or "").split(",") if n.strip()]
    for n in names:
        coll.column(n)          # InvalidInput for a property the collection does not have
    return where, features.parse_bbox(request.args.get("bbox")), names or list(coll.fields)


@bp.get("/ogc/collections/<name>/items")
def ogc_items(name):
    conn = db.connection()
    coll = features.get_collection(conn, name)
    fmt = request.args.get("f", "json").lower()
    if fmt not in ("json", "geojson", "csv"):
        raise InvalidInput("f must be json or csv", field="f")
    where, bbox, names = _selection(coll)
    offset = _int_arg("offset", 0, 0, 10 ** 9)
    if fmt == "csv":   # every match unless the client asks for a page: an export is not a page
        return _csv(coll, where, bbox, names, _int_arg("limit", None, 1, 10 ** 9), offset)
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, features.MAX_LIMIT)
    feats, matched = features.query(conn, coll, where, bbox, limit=limit, offset=offset, out_fields=names)
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


def _csv(coll, where, bbox, names, limit, offset):
    """The selection as CSV, written as rows arrive from a server-side cursor (memory stays flat). The
    rows are read on a connection of their own: the request's is closed when the view returns, before
    the body is sent."""
    header = names + (["longitude", "latitude"] if coll.geometry_type == "Point" else [])
    engine = db.engine

    def chunks():
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        with engine.connect() as conn:
            for n, row in enumerate(features.rows(conn, coll, where, bbox, limit=limit, offset=offset), 1):
                writer.writerow([_default(v) if isinstance(v, (date, datetime)) else v for v in map(row.get, header)])
                if n % CSV_ROWS_PER_WRITE == 0:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
        yield out.getvalue()

    return Response(chunks(), content_type="text/csv; charset=utf-8",
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
