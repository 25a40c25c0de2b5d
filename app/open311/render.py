"""Rendering GeoReport v2 documents as JSON or XML (the spec's required format), errors included."""
import json
import xml.etree.ElementTree as ET

from flask import Response

FORMATS = ("json", "xml")
# XML element names for the items of each top-level list.
ITEM_NAME = {"services": "service", "service_requests": "request", "errors": "error", "discovery": None}


def _to_xml(parent, key, value):
    if isinstance(value, dict):
        node = ET.SubElement(parent, key)
        for k, v in value.items():
            _to_xml(node, k, v)
    elif isinstance(value, list):
        node = ET.SubElement(parent, key)
        child = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format",
                 "notes": "note", "extensions": "extension"}.get(key, "item")
        for v in value:
            _to_xml(node, child, v)
    else:
        node = ET.SubElement(parent, key)
        if value is not None:
            node.text = str(value).lower() if isinstance(value, bool) else str(value)


def render(root, payload, fmt, status=200):
    """`payload` is a list (of items under <root>) or a dict (the body of <root>)."""
    if fmt == "xml":
        top = ET.Element(root)
        if isinstance(payload, list):
            for item in payload:
                _to_xml(top, ITEM_NAME.get(root) or "item", item)
        else:
            for k, v in payload.items():
                _to_xml(top, k, v)
        body = ET.tostring(top, encoding="utf-8", xml_declaration=True)
        return Response(body, status=status, mimetype="text/xml")
    return Response(json.dumps(payload, default=str), status=status, mimetype="application/json")


def render_errors(fmt, status, description):
    return render("errors", [{"code": status, "description": description}], fmt if fmt in FORMATS else "json",
                  status)
