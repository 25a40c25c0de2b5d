"""The field crew view (/crew): open tickets near me, work them, close them — on a phone."""
from flask import Blueprint

bp = Blueprint("crew", __name__)

from app.crew import routes  # noqa: E402,F401
