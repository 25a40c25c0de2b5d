"""Esri FeatureServer-compatible REST (read-only) under /arcgis/rest/services/<layer>/FeatureServer.

Errors are answered the ArcGIS way: HTTP 200 with {"error": {"code", "message", "details"}}, since
ArcGIS clients read the body, not the status. GET and POST (form) both work; the arcgis package POSTs.
"""
import functools
import json
import math
from datetime import date, datetime, time, timezone
from decimal import Decimal

from flask import Response, request

from app.extensions import db
from app.layers import bp, esri_statistics
from gis import features
from gis.errors import InvalidInput, NotFound, Pin311Error
from gis.esri_where import parse_where

VERSION = 11.1
MAX_RECORDS = 2000
SR = {"wkid": 4326, "latestWkid": 4326}
WEB_MERCATOR = (102100, 3857, 900913, 102113)
FIELD_TYPES = {"oid": "esriFieldTypeOID", "int": "esriFieldTypeInteger", "string": "esriFieldTypeString",
               "date": "esriFieldTypeDate", "bool": "esriFieldTypeSmallInteger"}
GEOMETRY_TYPES = {"Point": "esriGeometryPoint", "MultiPolygon": "esriGeometryPolygon"}
ROOT = "/arcgis/rest/services"


def _param(name, default=None):
    value = request.values.get(name)
    return default if value in (None, "") else value


def _bool(name, default=False):
    value = _param(name)
    return default if value is None else str(value).lower() in ("true", "1", "yes")


def _answer(body):
    pretty = _param("f", "json").lower() == "pjson"
    return Response(json.dumps(body, indent=2 if pretty else None, default=str),
                    content_type="application/geo+json" if _param("f") == "geojson" else "application/json")


def esri(view):
    """Run a FeatureServer view; typed errors become ArcGIS error bodies with HTTP 200."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            fmt = _param("f", "json").lower()
            if fmt not in ("json", "pjson", "geojson", "html"):
                raise InvalidInput(f"f={fmt[:20]!r} is not supported: use json, pjson or geojson", field="f")
            return _answer(view(*args, **kwargs))
        except Pin311Error as exc:
            code = 404 if exc.status == 404 else 400
            return _answer({"error": {"code": code, "message": exc.message,
                                      "details": [exc.message] + ([f"field: {exc.field}"] if exc.field else [])}})
    return wrapper


def _route(rule, endpoint):
    return bp.route(rule, methods=["GET", "POST"], endpoint=endpoint)


def _fields(coll, names=None):
    out = []
    for name in names or coll.fields:
        kind = coll.kind(name)
        field = {"name": name, "type": FIELD_TYPES[kind], "alias": name, "sqlType": "sqlTypeOther",
                 "nullable": kind != "oid", "editable": False, "domain": None, "defaultValue": None}
        if kind == "string":
            field["length"] = 4000
        out.append(field)
    return out


def _extent(conn, coll):
    box = features.extent(conn, coll) or (-180, -90, 180, 90)
    return {"xmin": box[0], "ymin": box[1], "xmax": box[2], "ymax": box[3], "spatialReference": SR}


@_route(ROOT, "arcgis_catalog")
@esri
def catalog():
    conn = db.connection()
    return {"currentVersion": VERSION, "folders": [],
            "services": [{"name": name, "type": "FeatureServer"} for name in features.collections(conn)]}


@_route(f"{ROOT}/<name>/FeatureServer", "arcgis_service")
@esri
def service(name):
    conn = db.connection()
    coll = features.get_collection(conn, name)
    ext = _extent(conn, coll)
    return {"currentVersion": VERSION, "serviceDescription": coll.description, "hasVersionedData": False,
            "supportsDisconnectedEditing": False, "maxRecordCount": MAX_RECORDS,
            "supportedQueryFormats": "JSON, geoJSON", "capabilities": "Query",
            "description": coll.description, "copyrightText": "", "spatialReference": SR,
            "initialExtent": ext, "fullExtent": ext, "allowGeometryUpdates": False, "units": "esriDecimalDegrees",
            "layers": [{"id": 0, "name": coll.name, "parentLayerId": -1, "defaultVisibility": True,
                        "subLayerIds": None, "minScale": 0, "maxScale": 0,
                        "geometryType": GEOMETRY_TYPES[coll.geometry_type]}],
            "tables": []}


@_route(f"{ROOT}/<name>/FeatureServer/<int:layer_id>", "arcgis_layer")
@esri
def layer(name, layer_id):
    conn = db.connection()
    coll = _layer(conn, name, layer_id)
    return {"currentVersion": VERSION, "id": 0, "name": coll.name, "type": "Feature Layer",
            "description": coll.description, "geometryType": GEOMETRY_TYPES[coll.geometry_type],
            "objectIdField": coll.oid_field, "globalIdField": "", "displayField": coll.id_field,
            "typeIdField": "", "fields": _fields(coll), "extent": _extent(conn, coll), "hasZ": False, "hasM": False,
            "minScale": 0, "maxScale": 0, "maxRecordCount": MAX_RECORDS, "standardMaxRecordCount": MAX_RECORDS,
            "capabilities": "Query", "supportedQueryFormats": "JSON, geoJSON", "supportsAdvancedQueries": True,
            "supportsStatistics": True, "supportsPagination": True, "useStandardizedQueries": True,
            "advancedQueryCapabilities": {"supportsPagination": True, "supportsOrderBy": True,
                                          "supportsDistinct": False, "supportsQueryWithResultType": False,
                                          "supportsReturningQueryExtent": False, "supportsStatistics": True,
                                          "supportsHavingClause": False,
                                          "supportsPaginationOnAggregatedQueries": True},
            "hasAttachments": False, "htmlPopupType": "esriServerHTMLPopupTypeNone", "types": [], "templates": [],
            "relationships": [], "isDataVersioned": False, "supportsRollbackOnFailureParameter": False,
            "allowGeometryUpdates": False, "spatialReference": SR}


def _layer(conn, name, layer_id):
    coll = features.get_collection(conn, name)
    if layer_id != 0:
        raise NotFound(f"{name} has one layer, 0")
    return coll


def _mercator_to_lonlat(x, y):
    return math.degrees(x / 6378137.0), math.degrees(2 * math.atan(math.exp(y / 6378137.0)) - math.pi / 2)


def _lonlat_to_mercator(lon, lat):
    lat = max(min(lat, 85.0511), -85.0511)
    return math.radians(lon) * 6378137.0, math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * 6378137.0


def _wkid(raw):
    if raw in (None, ""):
        return 4326
    try:
        value = json.loads(raw) if str(raw).lstrip().startswith("{") else int(raw)
        wkid = int(value.get("latestWkid") or value.get("wkid")) if isinstance(value, dict) else value
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(f"spatial reference {str(raw)[:40]!r} is not understood", field="inSR") from None
    if wkid not in (4326, *WEB_MERCATOR):
        raise InvalidInput(f"spatial reference {wkid} is not supported: use 4326 or 102100", field="inSR")
    return wkid


def _envelope():
    raw = _param("geometry")
    if raw is None:
        return None
    gtype = _param("geometryType", "esriGeometryEnvelope")
    if gtype not in ("esriGeometryEnvelope", "esriGeometryPoint"):
        raise InvalidInput(f"geometryType {gtype[:40]} is not supported: use esriGeometryEnvelope",
                           field="geometryType")
    rel = _param("spatialRel", "esriSpatialRelIntersects")
    if rel not in ("esriSpatialRelIntersects", "esriSpatialRelEnvelopeIntersects"):
        raise InvalidInput(f"spatialRel {rel[:40]} is not supported: use esriSpatialRelIntersects", field="spatialRel")
    sr = _param("inSR")
    try:
        if raw.lstrip().startswith("{"):
            geom = json.loads(raw)
            sr = sr or json.dumps(geom.get("spatialReference") or {"wkid": 4326})
            if "x" in geom:
                box = [float(geom["x"]), float(geom["y"]), float(geom["x"]), float(geom["y"])]
            else:
                box = [float(geom[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
        else:
            box = [float(v) for v in raw.split(",")]
            if len(box) == 2:
                box = box * 2
    except (ValueError, TypeError, KeyError, AttributeError):
        raise InvalidInput("geometry must be an envelope: xmin,ymin,xmax,ymax or Esri JSON", field="geometry") from None
    if len(box) != 4 or any(not math.isfinite(v) for v in box):
        raise InvalidInput("geometry must be an envelope: xmin,ymin,xmax,ymax", field="geometry")
    if _wkid(sr) != 4326:
        box = [*_mercator_to_lonlat(box[0], box[1]), *_mercator_to_lonlat(box[2], box[3])]
    ordered = (min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3]))
    return features.parse_bbox(",".join(str(v) for v in ordered))


def _order_by(coll):
    out = []
    for part in (_param("orderByFields") or "").split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise InvalidInput(f"orderByFields: {part.strip()[:40]!r} is not 'field [ASC|DESC]'", field="orderByFields")
        coll.column(words[0])
        out.append((words[0], len(words) == 2 and words[1].upper() == "DESC"))
    return out


def _out_fields(coll):
    raw = _param("outFields", "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names or "*" in names:
        return list(coll.fields)
    by_lower = {n.lower(): n for n in coll.fields}
    out = []
    for n in names:
        if n.lower() not in by_lower:
            raise InvalidInput(f"outFields: {coll.name} has no field {n[:40]!r}", field="outFields")
        out.append(by_lower[n.lower()])
    return out


def _int(name, default, low=0, high=10 ** 9):
    raw = _param(name)
    if raw is None:
        return default
    try:
        return max(low, min(int(raw), high))
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number", field=name) from None


def _epoch_ms(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, date):
        return int(datetime.combine(value, time(), timezone.utc).timestamp() * 1000)
    return value


def _esri_geometry(geom, out_wkid):
    if geom is None:
        return None
    proj = _lonlat_to_mercator if out_wkid != 4326 else (lambda x, y: (x, y))
    if geom["type"] == "Point":
        x, y = proj(*geom["coordinates"][:2])
        return {"x": x, "y": y}
    polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
    return {"rings": [[list(proj(*pt[:2])) for pt in ring] for poly in polys for ring in poly]}


@_route(f"{ROOT}/<name>/FeatureServer/<int:layer_id>/query", "arcgis_query")
@esri
def query(name, layer_id):
    conn = db.connection()
    coll = _layer(conn, name, layer_id)
    where = [parse_where(coll, _param("where"))]
    ids = _param("objectIds")
    if ids:
        try:
            wanted = [int(v) for v in ids.split(",") if v.strip()]
        except ValueError:
            raise InvalidInput("objectIds must be whole numbers separated by commas", field="objectIds") from None
        where.append(coll.column(coll.oid_field).in_(wanted))
    bbox = _envelope()
    stats, groups = esri_statistics.parse(coll, _param("outStatistics"), _param("groupByFieldsForStatistics"))
    if stats:   # as ArcGIS does, statistics take precedence over counts, ids and features
        return _statistics(conn, coll, where, bbox, stats, groups)
    if _bool("returnCountOnly"):
        return {"count": features.query(conn, coll, where, bbox, limit=None)[1]}
    order = _order_by(coll)
    if _bool("returnIdsOnly"):
        return {"objectIdFieldName": coll.oid_field,
                "objectIds": features.object_ids(conn, coll, where, bbox, order)}
    offset = _int("resultOffset", 0)
    count = _int("resultRecordCount", MAX_RECORDS, 1, MAX_RECORDS)
    out_wkid = _wkid(_param("outSR"))
    names = _out_fields(coll)
    with_geometry = _bool("returnGeometry", True)
    # one row more than asked tells whether the page was cut short, without a second count query
    feats, _ = features.query(conn, coll, where, bbox, limit=count + 1, offset=offset, order_by=order,
                              out_fields=names, with_geometry=with_geometry, count=False, esri_rings=True)
    exceeded = len(feats) > count
    feats = feats[:count]
    if _param("f") == "geojson":
        body = {"type": "FeatureCollection",
                "features": [{"type": "Feature", "id": f["oid"], "geometry": f["geometry"],
                              "properties": {k: _epoch_ms(v) for k, v in f["properties"].items()}} for f in feats]}
        if exceeded:
            body["properties"] = {"exceededTransferLimit": True}
        return body
    out_sr = SR if out_wkid == 4326 else {"wkid": 102100, "latestWkid": 3857}
    body = {"objectIdFieldName": coll.oid_field, "globalIdFieldName": "", "displayFieldName": coll.id_field,
            "geometryType": GEOMETRY_TYPES[coll.geometry_type], "spatialReference": out_sr,
            "fields": _fields(coll, names),
            "features": [{"attributes": {k: _epoch_ms(v) for k, v in f["properties"].items()},
                          **({"geometry": _esri_geometry(f["geometry"], out_wkid)} if with_geometry else {})}
                         for f in feats]}
    if exceeded:
        body["exceededTransferLimit"] = True
    return body


def _statistics(conn, coll, where, bbox, stats, groups):
    """outStatistics (grouped by groupByFieldsForStatistics) as ArcGIS answers them: features with
    attributes only."""
    if _param("having"):
        raise InvalidInput("having is not supported", field="having")
    outputs = {out.lower(): out for _, _, out in stats} | {g.lower(): g for g in groups}
    order = []
    for part in (_param("orderByFields") or "").split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or words[0].lower() not in outputs or \
                (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise InvalidInput(f"orderByFields: {part.strip()[:40]!r} is not 'group field or statistic [ASC|DESC]'",
                               field="orderByFields")
        order.append((outputs[words[0].lower()], len(words) == 2 and words[1].upper() == "DESC"))
    offset = _int("resultOffset", 0)
    count = _int("resultRecordCount", MAX_RECORDS, 1, MAX_RECORDS)
    rows = features.statistics(conn, coll, where, bbox, stats, groups, order, limit=count + 1, offset=offset)
    exceeded = len(rows) > count
    rows = [{k: float(v) if isinstance(v, Decimal) else _epoch_ms(v) for k, v in r.items()} for r in rows[:count]]
    types = {"count": "esriFieldTypeInteger", "sum": "esriFieldTypeDouble", "avg": "esriFieldTypeDouble",
             "stddev": "esriFieldTypeDouble", "var": "esriFieldTypeDouble"}
    fields = (_fields(coll, groups) if groups else []) + [
        {"name": out, "alias": out, "type": types.get(kind) or FIELD_TYPES[coll.kind(field)]}
        for kind, field, out in stats]
    if _param("f") == "geojson":
        body = {"type": "FeatureCollection",
                "features": [{"type": "Feature", "geometry": None, "properties": r} for r in rows]}
        if exceeded:
            body["properties"] = {"exceededTransferLimit": True}
        return body
    body = {"displayFieldName": "", "fieldAliases": {f["name"]: f["alias"] for f in fields}, "fields": fields,
            "features": [{"attributes": r} for r in rows]}
    if exceeded:
        body["exceededTransferLimit"] = True
    return body
