"""Read pin311 through its own public services (OGC API – Features), for the analyst notebooks.

The base URL comes from PIN311_URL (default http://127.0.0.1:5000). Requests come as CSV pages
(`f=csv`, `limit`/`offset`), districts as GeoJSON read by geopandas. No database access here.
"""
import io
import os

import geopandas
import pandas
import requests

PAGE = 10000


def base_url():
    return os.environ.get("PIN311_URL", "http://127.0.0.1:5000").rstrip("/")


def read_requests(base=None, **filters):
    """Every public request matching the OGC query filters (e.g. status="open") as a DataFrame."""
    base = base or base_url()
    pages, offset = [], 0
    with requests.Session() as http:
        while True:
            resp = http.get(f"{base}/ogc/collections/requests/items",
                            params={"f": "csv", "limit": PAGE, "offset": offset, **filters}, timeout=120)
            resp.raise_for_status()
            page = pandas.read_csv(io.StringIO(resp.text), dtype=str, keep_default_na=False)
            pages.append(page)
            if len(page) < PAGE:
                break
            offset += PAGE
    df = pandas.concat(pages, ignore_index=True)
    for col in ("requested_at", "updated_at", "expected_at", "closed_at"):
        df[col] = pandas.to_datetime(df[col].replace("", None), utc=True, format="ISO8601")
    for col in ("longitude", "latitude"):
        df[col] = pandas.to_numeric(df[col])
    return df


def read_layer(name, base=None):
    """A district layer (wards, police_districts, neighborhoods, ...) as a GeoDataFrame."""
    base = base or base_url()
    return geopandas.read_file(f"{base}/ogc/collections/{name}/items?limit=10000")


def leaflet_assets(base=None):
    """folium default_js/default_css pointing at the Leaflet pin311 serves itself (no CDN)."""
    base = base or base_url()
    return ([("leaflet", f"{base}/static/vendor/leaflet/leaflet.js")],
            [("leaflet_css", f"{base}/static/vendor/leaflet/leaflet.css")])
