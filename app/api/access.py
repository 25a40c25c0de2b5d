"""Who may call the JSON API: a signed-in staff member (with a CSRF token on writes) or an API key."""
from flask import g, request
from flask_login import current_user

from app.extensions import csrf, db
from gis import apikeys
from gis.errors import Forbidden

STAFF = ("agent", "supervisor", "crew", "analyst", "admin")


def require(scope):
    """Authorise the current request for `scope`; returns the actor name to record on events.

    A key the caller sends is checked first: it is what an integration means to use, and it spares the
    session and user loading that a header-authenticated call never needs. A key is never sent by a
    browser on its own, so a key-authenticated write needs no CSRF token."""
    key = request.headers.get("X-Api-Key") or request.args.get("api_key")
    if key:
        conn = db.connection()
        row = apikeys.verify(conn, key, scope)
        conn.commit()
        g.actor = f"apikey:{row.name}"
        return g.actor
    if current_user.is_authenticated and current_user.role in STAFF:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            csrf.protect()
        g.actor = f"{current_user.role}:{current_user.username}"
        return g.actor
    raise Forbidden("sign in, or send an API key in the X-Api-Key header")
