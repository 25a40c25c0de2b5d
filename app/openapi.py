"""The OpenAPI description of the HTTP API (app/openapi.yaml), served at /api/openapi.yaml.

The Open311 part lives with its blueprint (app/open311/openapi.yaml) and is merged in when present,
so each feature keeps its own description next to its code.
"""
from functools import lru_cache
from pathlib import Path

import yaml
from flask import Response

HERE = Path(__file__).resolve().parent
PARTS = (HERE / "open311" / "openapi.yaml",)


@lru_cache(maxsize=1)
def spec():
    """The merged description as a dict (paths and components of every part)."""
    doc = yaml.safe_load((HERE / "openapi.yaml").read_text())
    for part in PARTS:
        if not part.exists():
            continue
        extra = yaml.safe_load(part.read_text()) or {}
        prefix = _prefix(extra)
        for path, item in (extra.get("paths") or {}).items():
            doc["paths"][prefix + path if not path.startswith(prefix) else path] = item  # theirs wins
        for section, entries in (extra.get("components") or {}).items():
            doc["components"].setdefault(section, {})
            for name, value in entries.items():
                doc["components"][section].setdefault(name, value)
    return doc


def _prefix(part):
    """A part written with servers: [{url: /open311}] has paths relative to that prefix."""
    servers = part.get("servers") or []
    url = servers[0].get("url", "") if servers else ""
    return url.rstrip("/") if url.startswith("/") else ""


def register(app):
    def openapi_yaml():
        return Response(yaml.safe_dump(spec(), sort_keys=False), mimetype="application/yaml")
    app.add_url_rule("/api/openapi.yaml", "openapi", openapi_yaml, methods=["GET"])
