"""Requests as ArcGIS features, and upserts to a hosted layer keyed on a unique field.

Features come only from THE public view (gis/public.py: no contacts, no descriptions, sensitive
services coarsened). An upsert looks up the objectIds the layer already holds for the keys, then
sends adds, updates and deletes in batches of `applyEdits`: sending the same batch twice (a worker
killed after the portal applied it but before it marked its outbox rows) updates, never duplicates.
"""
from datetime import datetime

from sqlalchemy import text

BATCH = 500            # features per applyEdits call
KEY_CHUNK = 200        # keys per "IN (...)" lookup, well under the 2,000-character GET limit

_PUBLIC = """
SELECT p.objectid, p.public_id, p.service_code, p.service_name, p.service_group, p.status, p.closure_reason,
       p.requested_at, p.updated_at, p.expected_at, p.closed_at, p.address, p.districts, p.coarsened,
       p.media_url, ST_X(p.geom) AS x, ST_Y(p.geom) AS y
  FROM public_requests p"""
PUBLIC_ALL = text(_PUBLIC + " ORDER BY p.objectid")
PUBLIC_SOME = text(_PUBLIC + " WHERE p.objectid = ANY(:ids)")
PUBLIC_IDS = text("SELECT id, public_id FROM service_requests WHERE id = ANY(:ids)")


class EditFailed(Exception):
    """The portal answered applyEdits but refused some edits."""


def _ms(value):
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else None


def district_layers(conn):
    rows = conn.execute(text("SELECT name FROM layers WHERE kind = 'district' ORDER BY name"))
    return [r.name for r in rows]


def request_feature(row, districts):
    """One public_requests row → an Esri JSON point feature (dates as epoch milliseconds)."""
    within = None
    if row.closed_at is not None and row.expected_at is not None:
        within = int(row.closed_at <= row.expected_at)
    attrs = {
        "public_id": row.public_id, "service_code": row.service_code, "service_name": row.service_name,
        "service_group": row.service_group, "status": row.status, "closure_reason": row.closure_reason,
        "requested_at": _ms(row.requested_at), "updated_at": _ms(row.updated_at),
        "expected_at": _ms(row.expected_at), "closed_at": _ms(row.closed_at), "within_sla": within,
        "address": row.address, "coarsened": int(bool(row.coarsened)), "media_url": row.media_url,
    }
    for layer in districts:
        attrs[layer] = (row.districts or {}).get(layer)
    return {"attributes": attrs, "geometry": {"x": row.x, "y": row.y, "spatialReference": {"wkid": 4326}}}


def _quote(value):
    return "'" + str(value).replace("'", "''") + "'"


def existing(layer, key, keys=None):
    """{key value: objectId} the hosted layer holds, for `keys` (or for every feature when None)."""
    found = {}
    if keys is None:
        wheres = ["1=1"]
    else:
        keys = sorted({str(k) for k in keys})
        wheres = [f"{key} IN ({','.join(_quote(k) for k in keys[i:i + KEY_CHUNK])})"
                  for i in range(0, len(keys), KEY_CHUNK)]
    for where in wheres:
        result = layer.query(where=where, out_fields=f"OBJECTID,{key}", return_geometry=False)
        for feat in result.features:
            found[str(feat.attributes[key])] = feat.attributes["OBJECTID"]
    return found


def _check(answer):
    for kind in ("addResults", "updateResults", "deleteResults"):
        bad = [r for r in answer.get(kind, []) if not r.get("success")]
        if bad:
            err = bad[0].get("error") or {}
            raise EditFailed(f"{len(bad)} of {len(answer[kind])} {kind[:-7]}s refused: "
                             f"{err.get('description') or err}")


def upsert(layer, features, key, gone=(), have=None, batch=BATCH):
    """Make the layer hold `features` (matched on attribute `key`) and not hold the keys in `gone`.

    `have` ({key: objectId}) may be passed when already known (a full reload). Returns counts.
    """
    keys = [f["attributes"][key] for f in features]
    have = existing(layer, key, keys + list(gone)) if have is None else have
    adds, updates = [], []
    for feat in features:
        oid = have.get(str(feat["attributes"][key]))
        if oid is None:
            adds.append(feat)
        else:
            updates.append({"attributes": {**feat["attributes"], "OBJECTID": oid},
                            "geometry": feat["geometry"]})
    deletes = [have[str(k)] for k in gone if str(k) in have]
    edits = ([("adds", f) for f in adds] + [("updates", f) for f in updates]
             + [("deletes", d) for d in deletes])
    for i in range(0, len(edits), batch):
        chunk = edits[i:i + batch]
        answer = layer.edit_features(
            adds=[f for k, f in chunk if k == "adds"] or None,
            updates=[f for k, f in chunk if k == "updates"] or None,
            deletes=",".join(str(d) for k, d in chunk if k == "deletes") or None)
        _check(answer)
    return {"added": len(adds), "updated": len(updates), "deleted": len(deletes)}
