"""The OGC API's own descriptions: its OpenAPI 3.0 document (/ogc/api, the landing page's service-desc)
and each collection's queryables (OGC API – Features Part 3, a JSON Schema).

Clients read them: GDAL's OAPIF driver sends a -where on the property names listed for a collection's
items to the server instead of filtering every feature itself, and recent GDAL takes its page size from
the `limit` parameter's default and maximum (GDAL 3.6 pages at 10 whatever the server says); OWSLib's
api() returns the document.
"""
OPENAPI_TYPE = "application/vnd.oai.openapi+json;version=3.0"
SCHEMA_TYPE = "application/schema+json"
GEOJSON = "application/geo+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
# Part 1 query parameters every items request understands; anything else must be a property.
COMMON = ("f", "limit", "offset", "bbox", "bbox-crs", "crs", "datetime", "properties")
SCHEMAS = {"oid": {"type": "integer"}, "int": {"type": "integer"}, "string": {"type": "string"},
           "date": {"type": "string", "format": "date-time"}, "bool": {"type": "boolean"}}
GEOMETRY_SCHEMAS = {"Point": "https://geojson.org/schema/Point.json",
                    "MultiPolygon": "https://geojson.org/schema/MultiPolygon.json"}


def _parameters(default_limit, max_limit):
    ref = {"type": "string"}
    return {
        "limit": {"name": "limit", "in": "query", "required": False, "style": "form", "explode": False,
                  "description": "features per page (a CSV export without limit holds every match)",
                  "schema": {"type": "integer", "minimum": 1, "maximum": max_limit, "default": default_limit}},
        "offset": {"name": "offset", "in": "query", "required": False,
                   "schema": {"type": "integer", "minimum": 0, "default": 0}},
        "bbox": {"name": "bbox", "in": "query", "required": False, "style": "form", "explode": False,
                 "description": "minx,miny,maxx,maxy in CRS84",
                 "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}},
        "bbox-crs": {"name": "bbox-crs", "in": "query", "required": False, "schema": {"type": "string",
                                                                                      "enum": [CRS84]}},
        "crs": {"name": "crs", "in": "query", "required": False, "schema": {"type": "string", "enum": [CRS84]}},
        "datetime": {"name": "datetime", "in": "query", "required": False, "style": "form", "explode": False,
                     "description": "an RFC 3339 instant or interval (a/b, ../b, a/..); a date is a UTC day",
                     "schema": ref},
        "properties": {"name": "properties", "in": "query", "required": False, "style": "form", "explode": False,
                       "description": "the properties to return, comma-separated",
                       "schema": {"type": "array", "items": {"type": "string"}}},
        "f": {"name": "f", "in": "query", "required": False,
              "schema": {"type": "string", "enum": ["json", "geojson", "csv"], "default": "json"}},
        "collectionId": {"name": "collectionId", "in": "path", "required": True, "schema": ref},
        "featureId": {"name": "featureId", "in": "path", "required": True, "schema": ref},
    }


def _ref(name):
    return {"$ref": f"#/components/parameters/{name}"}


def _get(summary, parameters=(), content_type="application/json"):
    return {"get": {"summary": summary, "parameters": list(parameters),
                    "responses": {"200": {"description": summary, "content": {content_type: {}}},
                                  "400": {"$ref": "#/components/responses/Error"},
                                  "404": {"$ref": "#/components/responses/Error"}}}}


def document(colls, server_url, default_limit, max_limit):
    """The OpenAPI 3.0 document of the service at `server_url` (…/ogc) for collections `colls`. Each
    collection has its own paths (as pygeoapi writes them), so its items path can list its properties."""
    paths = {
        "/": _get("landing page"),
        "/api": _get("this document", content_type=OPENAPI_TYPE),
        "/conformance": _get("conformance classes"),
        "/collections": _get("feature collections"),
    }
    for coll in colls.values():
        base = f"/collections/{coll.name}"
        own = [_ref(p) for p in COMMON if p != "datetime" or coll.datetime_field]
        own += [{"name": name, "in": "query", "required": False, "description": f"only features whose {name} "
                 "equals this value", "schema": SCHEMAS[kind]} for name, (kind, _) in coll.fields.items()]
        paths[base] = _get(coll.title)
        paths[f"{base}/queryables"] = _get(f"the properties of {coll.name} usable as filters", content_type=SCHEMA_TYPE)
        paths[f"{base}/items"] = _get(f"features of {coll.name}", own, GEOJSON)
        paths[f"{base}/items/{{featureId}}"] = _get(f"one feature of {coll.name}", [_ref("featureId")], GEOJSON)
    return {
        "openapi": "3.0.3",
        "info": {"title": "pin311 map layers (OGC API – Features)", "version": "1.0.0",
                 "description": "311 service requests (public view) and the city's map layers"},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "parameters": _parameters(default_limit, max_limit),
            "responses": {"Error": {"description": "the request could not be answered", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "error": {"type": "string"}, "message": {"type": "string"}}}}}}},
        },
    }


def queryables(coll, url):
    """OGC API – Features Part 3 queryables of `coll`: every property, as a filter `name=value` takes it."""
    props = {name: {"title": name, **SCHEMAS[kind]} for name, (kind, _) in coll.fields.items()}
    props["geometry"] = {"$ref": GEOMETRY_SCHEMAS[coll.geometry_type], "x-ogc-role": "primary-geometry"}
    return {"$schema": "https://json-schema.org/draft/2019-09/schema", "$id": url, "type": "object",
            "title": coll.title, "properties": props, "additionalProperties": False}
