"""ArcGIS publishing with the real `arcgis` client against the stand-in portal (tests/standin_portal.py)."""
import json

from sqlalchemy import text

from gis import arcgis_connect, arcgis_publish
from tests.arcgis_fixtures import arcgis_env, assert_layer_is_public_view, hosted_requests, portal, published  # noqa: F401


def test_publish_makes_layers_webmap_and_dashboard_holding_the_public_view(engine, portal, published):
    kinds = sorted(i["type"] for i in portal.items.values())
    assert kinds == ["Dashboard", "Feature Service", "Feature Service", "Feature Service", "Feature Service",
                     "Feature Service", "Web Map"]
    with engine.connect() as conn:
        assert_layer_is_public_view(conn, portal)
