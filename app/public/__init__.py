"""The public site, no sign-in: status map, request status pages, what's near me, and the report form."""
from flask import Blueprint

bp = Blueprint("public", __name__)

from app.public import routes  # noqa: E402,F401  (registers the routes)
