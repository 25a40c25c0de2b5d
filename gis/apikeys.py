"""API keys for Open311 and the JSON API: shown once, stored as SHA-256, scoped, revocable."""
import hashlib
import secrets
import time

from sqlalchemy import text

from gis import prepared
from gis.errors import Forbidden, InvalidInput

SCOPES = ("open311:write", "api:read", "api:write")
# A key checked in the database less than this long ago is taken as valid again without asking it: at
# intake rates the check was one of two round trips per request. So a key revoked by another process
# (the CLI) stops working within this second; one revoked by this process (revoke below) at once.
CACHE_SECONDS = 1.0
_CACHE_MAX = 1000
_checked = {}                    # (engine, key hash) -> (monotonic time of the database check, row)


def digest(key):
    """The stored form of a key (SHA-256): what the database and the rate limiter's counters hold."""
    return hashlib.sha256(key.encode()).hexdigest()


def create(conn, name, scopes=("open311:write",)):
    """Create a key; returns (id, key). The key itself is never stored and cannot be shown again."""
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise InvalidInput(f"unknown scope {bad[0]!r}; scopes are {', '.join(SCOPES)}")
    key = "p311_" + secrets.token_urlsafe(24)
    key_id = conn.scalar(text("INSERT INTO api_keys (name, prefix, key_hash, scopes) VALUES (:n, :p, :h, :s) "
                              "RETURNING id"), {"n": name, "p": key[:9], "h": digest(key), "s": list(scopes)})
    return key_id, key


_VERIFY = text("""
WITH k AS (SELECT id, name, scopes, last_used_at FROM api_keys WHERE key_hash = :h AND revoked_at IS NULL),
touch AS (UPDATE api_keys a SET last_used_at = now() FROM k
           WHERE a.id = k.id AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute'))
SELECT id, name, scopes FROM k""")
_VERIFY_STMT = prepared.Statement("pin311_apikey", _VERIFY.text, {"h": "text"})


def verify(conn, key, scope):
    """The key's row when it is valid, not revoked and has `scope`; Forbidden otherwise."""
    if not key or not isinstance(key, str) or len(key) > 200:
        raise Forbidden("a valid api_key is required")
    hashed = digest(key)
    where = (conn.engine, hashed)    # per database: a restored copy may hold the same key, revoked or not
    checked_at, row = _checked.get(where, (None, None))
    if checked_at is None or time.monotonic() - checked_at >= CACHE_SECONDS:
        # last_used_at is refreshed at most once a minute: writing it on every call made each API request
        # a second committed (fsynced) write, all workers queueing on the same key's row lock.
        row = _VERIFY_STMT.run(conn, {"h": hashed}).first()
        if row is None:                      # unknown or revoked: never remembered
            _checked.pop(where, None)
            raise Forbidden("api_key is not valid (unknown or revoked)")
        if len(_checked) >= _CACHE_MAX:
            _checked.clear()
        _checked[where] = (time.monotonic(), row)
    if scope not in row.scopes:
        raise Forbidden(f"api_key lacks the {scope} scope")
    return row


def list_keys(conn):
    return [dict(r._mapping) for r in conn.execute(text(
        "SELECT id, name, prefix, scopes, created_at, revoked_at, last_used_at FROM api_keys ORDER BY id"))]


def forget_checked():
    """Ask the database about every key again (revoke does; so may a test that changes a key's row)."""
    _checked.clear()


def revoke(conn, key_id):
    forget_checked()
    done = conn.execute(text("UPDATE api_keys SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL "
                             "RETURNING id"), {"id": key_id}).first()
    if not done:
        raise InvalidInput(f"no active api key with id {key_id}")
