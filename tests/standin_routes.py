"""The stand-in portal's REST answers (see tests/standin_portal.py): route(portal, method, path, form, auth)."""
import json
import re
import time
import uuid

from tests.standin_portal import (API_KEY, CLIENT_ID, CLIENT_SECRET, MAX_RECORDS, PASSWORD, USER,
                                  HostedLayer, _error)

REST = "/portal/sharing/rest"
USER_JSON = {"username": USER, "fullName": "Stand-in Admin", "role": "org_admin", "orgId": "org1",
             "privileges": ["portal:admin:viewUsers", "portal:user:createItem", "portal:publisher:publishFeatures"]}
_OPEN = {"info", "portals/self", "", "generateToken", "oauth2/token"}


def route(portal, method, path, form, auth):
    if path.startswith(REST):
        return _portal(portal, path[len(REST):].strip("/"), form, auth)
    m = re.match(r"^/server/rest/(admin/)?services/Hosted/([^/]+)/FeatureServer(?:/(\w+))?(?:/(\w+))?$", path)
    if m:
        if auth != "ok":
            return _auth_error(auth)
        return _feature_server(portal, bool(m.group(1)), m.group(2), m.group(3), m.group(4), form)
    if path.startswith("/geocode/rest/services/World/GeocodeServer"):
        return _geocoder(portal, path.rsplit("/", 1)[-1], form)
    return None


def _auth_error(auth):
    return _error(498, "Invalid token.") if auth == "invalid" else _error(499, "Token Required.")


def _portal(portal, sub, form, auth):
    if sub == "info":
        return {"owningSystemUrl": portal.url, "authInfo": {
            "isTokenBasedSecurity": True, "tokenServicesUrl": f"{portal.url}/sharing/rest/generateToken"}}
    if sub == "":
        return {"currentVersion": "2024.1"}
    if sub == "generateToken":
        if form.get("username") == USER and form.get("password") == PASSWORD:
            return {"token": portal.issue_token(), "expires": int((time.time() + 3600) * 1000), "ssl": True}
        return _error(400, "Unable to generate token. Invalid username or password.")
    if sub == "oauth2/token":
        client = (form.get("client_id"), form.get("client_secret"))
        if form.get("grant_type") == "client_credentials" and client == (CLIENT_ID, CLIENT_SECRET):
            return {"access_token": portal.issue_token(7200), "expires_in": 7200}
        return {"error": {"code": 400, "error": "invalid_client", "message": "Invalid client_id", "details": []}}
    if sub == "portals/self":
        if auth == "invalid":
            return _auth_error(auth)
        me = {"portalName": "ArcGIS Enterprise", "portalMode": "singletenant", "id": "org1", "isPortal": True,
              "currentVersion": "2024.1", "name": "Stand-in", "helperServices": {"geocode": [
                  {"url": f"{portal.host}/geocode/rest/services/World/GeocodeServer", "batch": True,
                   "placefinding": True, "name": "World"}]}}
        return {**me, "user": USER_JSON} if auth == "ok" else me
    if auth != "ok":
        return _auth_error(auth)
    if sub in ("community/self", f"community/users/{USER}"):
        return USER_JSON
    if sub == "portals/self/servers/computePrivateServiceUrl":
        return {"serviceUrl": form.get("serviceUrl"), "privateServiceUrl": form.get("serviceUrl")}
    if sub == "search":
        return _search(portal, form)
    m = re.match(r"^content/items/(\w+)(/data)?$", sub)
    if m:
        item = portal.items.get(m.group(1))
        if item is None:
            return _error(400, "Item does not exist or is inaccessible.")
        return portal.item_data.get(item["id"], {}) if m.group(2) else item
    m = re.match(rf"^content/users/{USER}(?:/(\w+))?(?:/(\w+))?(?:/(\w+))?(?:/(\w+))?$", sub)
    if m:
        return _user_content(portal, [p for p in m.groups() if p], form)
    return None


def _user_content(portal, parts, form):
    if parts and parts[0] in portal.folders:
        folder, parts = parts[0], parts[1:]
    else:
        folder = None
    if not parts:
        return {"username": USER, "folders": list(portal.folders.values()),
                "items": [i for i in portal.items.values() if i.get("ownerFolder") == folder]}
    if parts == ["createFolder"]:
        fid = uuid.uuid4().hex
        portal.folders[fid] = {"username": USER, "id": fid, "title": form["title"]}
        return {"success": True, "folder": portal.folders[fid]}
    if parts == ["createService"]:
        return _create_service(portal, json.loads(form["createParameters"]), folder)
    if parts == ["addItem"]:
        item = _new_item(portal, form, folder)
        if form.get("text"):
            portal.item_data[item["id"]] = json.loads(form["text"])
        return {"success": True, "id": item["id"], "folder": folder}
    if len(parts) == 3 and parts[0] == "items":
        item = portal.items.get(parts[1])
        if item is None:
            return _error(400, "Item does not exist or is inaccessible.")
        if parts[2] == "status":
            return {"status": "completed", "itemId": item["id"], "id": item["id"]}
        if parts[2] == "update":
            item.update(_properties(form))
            if form.get("text"):
                portal.item_data[item["id"]] = json.loads(form["text"])
            return {"success": True, "id": item["id"]}
        if parts[2] == "delete":
            portal.items.pop(item["id"])
            return {"success": True, "itemId": item["id"]}
    return None


def _properties(form):
    props = {k: form[k] for k in ("title", "type", "snippet", "description", "typeKeywords", "url") if k in form}
    if "tags" in form:
        props["tags"] = [t.strip() for t in form["tags"].split(",") if t.strip()]
    return props


def _new_item(portal, form, folder, **extra):
    iid = uuid.uuid4().hex
    item = {"id": iid, "owner": USER, "title": "", "type": "", "tags": [], "snippet": None, "description": None,
            "url": None, "access": "private", "ownerFolder": folder, "created": int(time.time() * 1000), "name": None}
    item.update(_properties(form))
    item.update(extra)
    portal.items[iid] = item
    return item


def _create_service(portal, params, folder):
    name = params["name"]
    if name in portal.services:
        return _error(400, f"Service name '{name}' already exists for '{portal.url}'")
    url = f"{portal.host}/server/rest/services/Hosted/{name}/FeatureServer"
    item = _new_item(portal, {"title": name}, folder, type="Feature Service", url=url, name=name,
                     typeKeywords="ArcGIS Server,Data,Feature Access,Feature Service,Service,Hosted Service")
    portal.services[name] = {"item": item["id"], "params": params, "layers": {}}
    return {"success": True, "itemId": item["id"], "serviceurl": url, "name": name, "type": "Feature Service"}


def _search(portal, form):
    terms = re.findall(r'(NOT\s+)?(\w+):(?:"([^"]*)"|([^\s()]+))', form.get("q", ""))
    found = []
    for item in portal.items.values():
        ok = True
        for negated, key, quoted, bare in terms:
            value = (quoted or bare).lower()
            if key == "title":
                hit = value in (item["title"] or "").lower()
            elif key == "tags":
                hit = value in [t.lower() for t in item["tags"]]
            elif key in ("type", "owner", "id"):
                hit = (item.get(key) or "").lower() == value
            else:
                continue
            ok &= hit != bool(negated)
        if ok:
            found.append(item)
    start, num = int(form.get("start", 1)), int(form.get("num", 10))
    page = found[start - 1:start - 1 + num]
    next_start = start + num if start - 1 + num < len(found) else -1
    return {"query": form.get("q"), "total": len(found), "start": start, "num": num, "nextStart": next_start,
            "results": page}


def _service_json(portal, name):
    svc = portal.services[name]
    return {"currentVersion": 11.1, "serviceItemId": svc["item"], "maxRecordCount": MAX_RECORDS,
            "capabilities": "Create,Delete,Query,Update,Editing", "supportedQueryFormats": "JSON",
            "spatialReference": {"wkid": 4326, "latestWkid": 4326}, "hasStaticData": False,
            "layers": [{"id": lid, "name": lyr.definition["name"], "geometryType": lyr.definition.get("geometryType")}
                       for lid, lyr in sorted(svc["layers"].items())], "tables": []}


def _layer_json(lid, layer):
    return {**layer.definition, "id": lid, "type": "Feature Layer", "currentVersion": 11.1,
            "maxRecordCount": MAX_RECORDS, "supportsAppend": True,
            "supportedAppendFormats": "featureCollection,geojson",
            "capabilities": "Create,Delete,Query,Update,Editing", "supportedQueryFormats": "JSON",
            "advancedQueryCapabilities": {"supportsPagination": True, "supportsOrderBy": True},
            "supportsPagination": True}


def _feature_server(portal, admin, name, lid, op, form):
    svc = portal.services.get(name)
    if svc is None:
        return _error(400, "Service not found")
    if admin and lid == "addToDefinition":
        definition = json.loads(form["addToDefinition"])
        added = []
        for layer in definition.get("layers", []):
            new_id = layer.get("id", len(svc["layers"]))
            fields = [{"name": "OBJECTID", "type": "esriFieldTypeOID", "alias": "OBJECTID", "editable": False,
                       "nullable": False}, {"name": "GlobalID", "type": "esriFieldTypeGlobalID", "alias": "GlobalID",
                                            "editable": False, "nullable": False, "length": 38}]
            fields += [f for f in layer.get("fields", []) if f["name"] not in ("OBJECTID", "GlobalID")]
            svc["layers"][new_id] = HostedLayer({**layer, "fields": fields, "objectIdField": "OBJECTID",
                                                 "globalIdField": "GlobalID"})
            added.append({"name": layer["name"], "id": new_id})
        return {"success": True, "layers": added}
    if admin and lid == "refresh":
        return {"success": True}
    if lid is None:
        return _service_json(portal, name)
    layer = svc["layers"].get(int(lid))
    if layer is None:
        return _error(400, "Invalid or missing layer")
    if op is None:
        return _layer_json(int(lid), layer)
    if op == "applyEdits":
        deletes = form.get("deletes") or ""
        deletes = json.loads(deletes) if deletes.startswith("[") else [int(x) for x in deletes.split(",") if x]
        return layer.apply_edits(json.loads(form.get("adds") or "[]"), json.loads(form.get("updates") or "[]"), deletes)
    if op == "query":
        return _query(layer, form)
    return None


def _true(form, key):
    return str(form.get(key, "false")).lower() == "true"


def _query(layer, form):
    rows = layer.select(form.get("where"), form.get("objectIds"))
    if _true(form, "returnCountOnly"):
        return {"count": len(rows)}
    if _true(form, "returnIdsOnly"):
        return {"objectIdFieldName": "OBJECTID", "objectIds": [r["attributes"]["OBJECTID"] for r in rows]}
    offset = int(form.get("resultOffset") or 0)
    limit = min(int(form.get("resultRecordCount") or MAX_RECORDS), MAX_RECORDS)
    page = rows[offset:offset + limit]
    out_fields = form.get("outFields", "*")
    names = None if out_fields in ("*", "") else {f.strip() for f in out_fields.split(",")} | {"OBJECTID"}
    geometry = str(form.get("returnGeometry", "true")).lower() != "false"
    features = []
    for r in page:
        attrs = r["attributes"] if names is None else {k: v for k, v in r["attributes"].items() if k in names}
        features.append({"attributes": dict(attrs), **({"geometry": r["geometry"]} if geometry else {})})
    fields = [f for f in layer.definition["fields"] if names is None or f["name"] in names]
    return {"objectIdFieldName": "OBJECTID", "globalIdFieldName": "GlobalID",
            "geometryType": layer.definition.get("geometryType"), "spatialReference": {"wkid": 4326},
            "fields": fields, "features": features, "exceededTransferLimit": offset + limit < len(rows)}


def _geocoder(portal, op, form):
    if op == "GeocodeServer":
        return {"currentVersion": 11.1, "serviceDescription": "Stand-in World geocoder",
                "singleLineAddressField": {"name": "SingleLine", "type": "esriFieldTypeString", "length": 200},
                "addressFields": [{"name": "Address", "type": "esriFieldTypeString", "length": 100}],
                "candidateFields": [{"name": "Score", "type": "esriFieldTypeDouble"}],
                "spatialReference": {"wkid": 4326, "latestWkid": 4326},
                "locatorProperties": {"MaxBatchSize": 1000, "SuggestedBatchSize": 150},
                "capabilities": "Geocode,ReverseGeocode,Suggest"}
    if op == "findAddressCandidates":
        return {"spatialReference": {"wkid": 4326, "latestWkid": 4326},
                "candidates": _candidates(portal, form)[:int(form.get("maxLocations") or 50)]}
    return None


def _candidates(portal, form):
    """Match the single line against the stand-in's gazetteer: every word of the street part must appear;
    the exact address scores 100, a looser match less (as the World geocoder ranks them)."""
    query = (form.get("SingleLine") or form.get("Address") or "").strip().lower()
    street_part = query.split(",")[0].strip()
    words = re.findall(r"\w+", street_part)
    out = []
    for entry in portal.gazetteer:
        label = entry["address"].lower()
        if not words or not all(re.search(rf"\b{re.escape(w)}\b", label) for w in words):
            continue
        score = 100.0 if label.split(",")[0].strip() == street_part else round(90.0 - len(label) / 20, 2)
        out.append({"address": entry["address"], "score": score,
                    "location": {"x": entry["x"], "y": entry["y"]},
                    "attributes": {"Match_addr": entry["address"], "Addr_type": entry.get("type", "PointAddress"),
                                   "City": entry.get("city"), "Postal": entry.get("zip"), "Score": score},
                    "extent": {"xmin": entry["x"] - 0.001, "ymin": entry["y"] - 0.001,
                               "xmax": entry["x"] + 0.001, "ymax": entry["y"] + 0.001}})
    return sorted(out, key=lambda c: -c["score"])


__all__ = ["route", "API_KEY"]
