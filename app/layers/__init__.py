"""Map services: vector tiles, OGC API – Features and an Esri FeatureServer-compatible REST API.

All read-only and public: requests come only from the public view (gis.public). Routes are thin;
the SQL lives in gis.tiles and gis.features.
"""
from flask import Blueprint

from app.extensions import csrf

bp = Blueprint("layers", __name__)
csrf.exempt(bp)    # read-only services; the arcgis client POSTs its queries (no session, no writes)

from app.layers import featureserver, ogc, tiles  # noqa: E402,F401  (registers the routes)
