"""The agent console (/agent): the call-taker's map, screen-pop, caller history and live ticket events."""
from flask import Blueprint

bp = Blueprint("agent", __name__)

from app.agent import routes  # noqa: E402,F401
