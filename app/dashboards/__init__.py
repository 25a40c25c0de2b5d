"""Analyst dashboards (/dashboards): charts, district and hot-spot maps, CSV/GeoJSON downloads, area sweeps."""
from flask import Blueprint

bp = Blueprint("dashboards", __name__)

from app.dashboards import routes, sweeps  # noqa: E402,F401
