"""API keys for Open311 and the JSON API: shown once, stored as SHA-256, scoped, revocable."""
import hashlib
import secrets

from sqlalchemy import text

from gis.errors import Forbidden, InvalidInput

SCOPES = ("open311:write", "api:read", "api:write")


def _hash(key):
    return hashlib.sha256(key.encode()).hexdigest()


def create(conn, name, scopes=("open311:write",)):
    """Create a key; returns (id, key). The key itself is never stored and cannot be shown again."""
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise InvalidInput(f"unknown scope {bad[0]!r}; scopes are {', '.join(SCOPES)}")
    key = "p311_" + secrets.token_urlsafe(24)
    key_id = conn.scalar(text("INSERT INTO api_keys (name, prefix, key_hash, scopes) VALUES (:n, :p, :h, :s) "
                              "RETURNING id"), {"n": name, "p": key[:9], "h": _hash(key), "s": list(scopes)})
    return key_id, key


def verify(conn, key, scope):
    """The key's row when it is valid, not revoked and has `scope`; Forbidden otherwise."""
    if not key or not isinstance(key, str) or len(key) > 200:
        raise Forbidden("a valid api_key is required")
    row = conn.execute(text("UPDATE api_keys SET last_used_at = now() WHERE key_hash = :h AND revoked_at IS NULL "
                            "RETURNING id, name, scopes"), {"h": _hash(key)}).first()
    if row is None:
        raise Forbidden("api_key is not valid (unknown or revoked)")
    if scope not in row.scopes:
        raise Forbidden(f"api_key lacks the {scope} scope")
    return row


def list_keys(conn):
    return [dict(r._mapping) for r in conn.execute(text(
        "SELECT id, name, prefix, scopes, created_at, revoked_at, last_used_at FROM api_keys ORDER BY id"))]


def revoke(conn, key_id):
    done = conn.execute(text("UPDATE api_keys SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL "
                             "RETURNING id"), {"id": key_id}).first()
    if not done:
        raise InvalidInput(f"no active api key with id {key_id}")
