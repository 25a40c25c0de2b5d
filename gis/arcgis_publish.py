"""`pin311 arcgis publish`: hosted feature layers, a Web Map and a Dashboard on ArcGIS Online/Enterprise.

Creates — or finds by title + the "pin311" tag and reuses — one hosted feature layer of requests
(THE public view, gis/public.py) and one per district layer, each with field aliases, coded-value
domains (status, category, closure reason) and item metadata; loads them in full (a reconcile:
adds, updates, and deletes of what the database no longer shows); then a Web Map over them and a
Dashboard, both built from the JSON templates in gis/arcgis_templates/. What was made is kept in
`arcgis_items` so the outbox worker (gis/arcgis_sync.py) knows where to send later changes.
"""
import json
import os
from pathlib import Path

from sqlalchemy import text

from gis import arcgis_features as feats
from gis.models import CLOSURE_REASONS, STATUSES

TAG = "pin311"
TEMPLATES = Path(__file__).parent / "arcgis_templates"
LOCK = 0x311A5C            # advisory lock: one writer to the hosted requests layer at a time
SAVE = text("""
INSERT INTO arcgis_items (portal_url, key, item_id, url, title) VALUES (:portal, :key, :item, :url, :title)
ON CONFLICT (portal_url, key) DO UPDATE SET item_id = excluded.item_id, url = excluded.url,
                                            title = excluded.title, published_at = now()""")
_DISTRICTS = text("""
SELECT d.code, d.name, ST_AsGeoJSON(ST_ForcePolygonCW(ST_SimplifyPreserveTopology(d.geom, 0.00002)), 6) AS gj
  FROM districts d JOIN layers l ON l.id = d.layer_id WHERE l.name = :layer ORDER BY d.code""")
_EXTENT = text("""
SELECT ST_XMin(e) AS xmin, ST_YMin(e) AS ymin, ST_XMax(e) AS xmax, ST_YMax(e) AS ymax
  FROM (SELECT ST_Extent(d.geom)::geometry AS e FROM districts d JOIN layers l ON l.id = d.layer_id
         WHERE l.kind IN ('boundary', 'district')) s""")


def fill(template, **values):
    """The template with every "{{name}}" string replaced: a whole-string placeholder by the value itself."""
    if isinstance(template, dict):
        return {k: fill(v, **values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, **values) for v in template]
    if isinstance(template, str) and "{{" in template:
        whole = template.strip("{}")
        if template == "{{%s}}" % whole and whole in values:
            return values[whole]
        for name, value in values.items():
            template = template.replace("{{%s}}" % name, str(value))
    return template


def template(name, **values):
    return fill(json.loads((TEMPLATES / f"{name}.json").read_text()), **values)


def _domain(name, pairs):
    return {"type": "codedValue", "name": name, "codedValues": [{"name": n, "code": c} for c, n in pairs]}


def _label(word):
    return word.replace("_", " ").capitalize()


def requests_layer(conn, districts, extent):
    services = conn.execute(text("SELECT code, name FROM services WHERE public ORDER BY name")).all()
    layer = template("requests_layer", extent=extent,
                     status_domain=_domain("pin311_status", [(s, _label(s)) for s in STATUSES]),
                     closure_domain=_domain("pin311_closure_reason",
                                            [(r, _label(r)) for r in CLOSURE_REASONS]),
                     category_domain=_domain("pin311_category", [(s.code, s.name) for s in services]))
    for name in districts:
        layer["fields"].append({"name": name, "type": "esriFieldTypeString", "alias": _label(name),
                                "length": 64, "nullable": True, "editable": True})
    return layer


def _find(gis, title, kind):
    me = gis.users.me.username
    query = f'title:"{title}" AND owner:{me} AND tags:"{TAG}" AND type:"{kind}"'
    for item in gis.content.search(query, max_items=100):
        if item.title == title and item.type == kind:
            return item
    return None


def ensure_service(gis, name, title, layer_def, meta):
    """The hosted feature layer item titled `title` (found or created) with its layer 0; its layer URL."""
    from arcgis.features import FeatureLayerCollection
    item = _find(gis, title, "Feature Service")
    if item is None:
        item = gis.content.create_service(name, service_type="featureService", create_params={
            "name": name, "serviceDescription": meta["snippet"], "maxRecordCount": 2000,
            "supportedQueryFormats": "JSON", "capabilities": "Create,Delete,Query,Update,Editing",
            "spatialReference": {"wkid": 4326}, "initialExtent": layer_def["extent"],
            "allowGeometryUpdates": True, "hasStaticData": False, "units": "esriDecimalDegrees"})
    item.update(item_properties={**meta, "title": title})
    collection = FeatureLayerCollection.fromitem(item)
    if not collection.layers:
        collection.manager.add_to_definition({"layers": [layer_def]})
    return item, f"{item.url.rstrip('/')}/0"


def ensure_item(gis, kind, title, data, meta):
    item = _find(gis, title, kind)
    props = {**meta, "title": title, "type": kind}
    if item is None:
        return gis.content.folders.get().add(props, text=json.dumps(data)).result()
    item.update(item_properties={**props, "text": json.dumps(data)})
    return item


def _rings(geojson):
    shape = json.loads(geojson)
    polys = shape["coordinates"] if shape["type"] == "MultiPolygon" else [shape["coordinates"]]
    return [ring for poly in polys for ring in poly]


def load_districts(conn, layer, name):
    rows = conn.execute(_DISTRICTS, {"layer": name}).all()
    features = [{"attributes": {"code": r.code, "name": r.name},
                 "geometry": {"rings": _rings(r.gj), "spatialReference": {"wkid": 4326}}} for r in rows]
    have = feats.existing(layer, "code")
    gone = set(have) - {r.code for r in rows}
    return feats.upsert(layer, features, "code", gone=gone, have=have)


def load_requests(engine, layer, districts):
    """Make the hosted layer hold exactly the public view (holding the sync lock meanwhile)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK})
        try:
            rows = conn.execute(feats.PUBLIC_ALL).all()
            features = [feats.request_feature(r, districts) for r in rows]
            have = feats.existing(layer, "public_id")
            gone = set(have) - {r.public_id for r in rows}
            return feats.upsert(layer, features, "public_id", gone=gone, have=have)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK})
            conn.commit()


def _meta(snippet, description, *tags):
    return {"snippet": snippet, "description": description, "tags": ",".join((TAG, "311") + tags)}


def publish(engine, gis, portal_url, city=None):
    """Create or reuse every item, load the layers, and record them; returns {key: counts or item id}."""
    from arcgis.features import FeatureLayer
    city = city or os.environ.get("PIN311_CITY_NAME", "Boston (demo)")
    with engine.begin() as conn:
        districts = feats.district_layers(conn)
        e = conn.execute(_EXTENT).one()
        extent = {"xmin": e.xmin, "ymin": e.ymin, "xmax": e.xmax, "ymax": e.ymax,
                  "spatialReference": {"wkid": 4326}}
        req_def = requests_layer(conn, districts, extent)
    slug = TAG + "_" + "".join(ch if ch.isalnum() else "_" for ch in city.lower()).strip("_")
    summary, saved, webmap_layers = {}, [], []

    title = f"311 requests - {city}"
    item, url = ensure_service(gis, f"{slug}_requests", title, req_def, _meta(
        f"Service requests reported to 311 in {city}, kept current by pin311.",
        req_def["description"], "requests"))
    with engine.begin() as conn:    # saved first, so the worker sends changes made while we load
        conn.execute(SAVE, {"portal": portal_url, "key": "requests", "item": item.id, "url": url,
                            "title": title})
    requests_item, requests_url = item, url

    for name in districts:
        dtitle = f"{_label(name)} - {city}"
        ddef = template("district_layer", layer=name, extent=extent, singular=_label(name).rstrip("s"),
                        description=f"The {_label(name).lower()} of {city} as pin311 uses them "
                                    "to route requests.")
        item, url = ensure_service(gis, f"{slug}_{name}", dtitle, ddef, _meta(
            f"{_label(name)} of {city} (district layer of pin311).", ddef["description"], "districts", name))
        with engine.connect() as conn:
            summary[f"district:{name}"] = load_districts(conn, FeatureLayer(url, gis), name)
        saved.append((f"district:{name}", item.id, url, dtitle))
        entry = template("webmap", layer=name, title=_label(name), url=url, item_id=item.id)["districtLayer"]
        webmap_layers.append(entry)

    summary["requests"] = load_requests(engine, FeatureLayer(requests_url, gis), districts)

    wm = template("webmap", district_layers=webmap_layers, requests_url=requests_url,
                  requests_item_id=requests_item.id, basemap_layers=[], extent=extent)
    wm["operationalLayers"] = wm.pop("operationalLayers") + [wm.pop("requestsLayer")]
    wm.pop("districtLayer")
    wtitle = f"311 requests map - {city}"
    webmap = ensure_item(gis, "Web Map", wtitle, wm, _meta(
        f"311 requests and districts of {city}.", "Requests by status over the district layers.", "map"))
    saved.append(("webmap", webmap.id, None, wtitle))

    district_field = "neighborhoods" if "neighborhoods" in districts else (districts or ["status"])[0]
    source = {"type": "featureServiceDataSource", "itemId": requests_item.id, "layerId": 0, "table": True}
    btitle = f"311 dashboard - {city}"
    board = template("dashboard", title=btitle, requests_item_id=requests_item.id, requests_source=source,
                     webmap_item_id=webmap.id, district_field=district_field,
                     district_title=_label(district_field).lower())
    dashboard = ensure_item(gis, "Dashboard", btitle, board, _meta(
        f"311 requests in {city}: status, categories, districts, SLA compliance and trend.",
        "Built by pin311 from its dashboard template; the data are the hosted requests layer.", "dashboard"))
    saved.append(("dashboard", dashboard.id, None, btitle))
    with engine.begin() as conn:
        for key, item_id, url, t in saved:
            conn.execute(SAVE, {"portal": portal_url, "key": key, "item": item_id, "url": url, "title": t})
    summary.update(webmap=webmap.id, dashboard=dashboard.id, requests_item=requests_item.id)
    return summary
