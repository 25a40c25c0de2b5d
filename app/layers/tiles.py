"""/tiles/{layer}/{z}/{x}/{y}.mvt — cached per data version, with ETag and Cache-Control."""
from flask import current_app, make_response, request

from app.extensions import db
from app.layers import bp
from gis import tiles
from gis.errors import NotFound

MVT = "application/vnd.mapbox-vector-tile"


def tile_cache():
    cache = current_app.extensions.get("pin311.tiles")
    if cache is None:
        cache = current_app.extensions["pin311.tiles"] = tiles.TileCache(
            version_ttl=current_app.config.get("TILE_VERSION_TTL", 1.0))
    return cache


@bp.get("/tiles/<layer>/<int:z>/<int:x>/<int:y>.mvt")
def tile(layer, z, x, y):
    tiles.check_tile(z, x, y)
    filters = tiles.parse_filters(request.args) if layer == "requests" else tiles.Filters()
    kind = None
    if layer != "requests":
        kind = tiles.map_layers(db.connection()).get(layer)
        if kind is None:
            raise NotFound(f"no map layer {layer!r}; see /tiles/layers.json")
    cache = tile_cache()
    # db.connection is passed, not called: a warm cache answers without touching the database
    key = cache.key(db.connection, layer, z, x, y, filters)
    etag = cache.etag(key)
    if etag in request.if_none_match:
        response = make_response("", 304)
    else:
        data = cache.get(key)
        if data is None:
            data = tiles.render(db.connection(), layer, z, x, y, filters, kind=kind)
            cache.put(key, data)
        response = make_response(data)
        response.headers["Content-Type"] = MVT
    response.set_etag(etag)
    response.headers["Cache-Control"] = "public, max-age=30, must-revalidate"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/tiles/layers.json")
def tile_layers():
    layers = {"requests": "requests", **tiles.map_layers(db.connection())}
    return {"layers": [{"name": name, "kind": kind, "url": f"/tiles/{name}/{{z}}/{{x}}/{{y}}.mvt"}
                       for name, kind in layers.items()]}
