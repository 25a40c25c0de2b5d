"""The JSON API (/api/v1): intake, ticket lookup, the agent's pin preview, geocoding, categories."""
from flask import Blueprint

bp = Blueprint("api", __name__)

from app.api import routes  # noqa: E402,F401
