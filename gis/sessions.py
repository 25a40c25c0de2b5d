"""Staff sign-in sessions kept server-side, so that one can really be ended (migration 0017).

The browser's cookie carries only a random token; the database keeps its SHA-256 (like an API key's),
when and from where the session began and when it was last seen. A session is honoured while it is not
revoked, has been used within the idle limit and is younger than the absolute limit. Signing out revokes
it; an administrator can revoke one or all of an account's sessions; the trigger of 0017 revokes them all
when the account's password changes or it is deactivated, so reactivating it revives none.
"""
import ipaddress
import secrets
from dataclasses import dataclass

from sqlalchemy import text

from gis.apikeys import digest

USER_AGENT_MAX = 300
TOKEN_MAX = 100          # a token we made is 43 characters; anything much longer is not one of ours


@dataclass(frozen=True)
class Limits:
    """How long a session lasts: `idle_minutes` without a request, `max_hours` whatever its use."""
    idle_minutes: int = 12 * 60
    max_hours: int = 24


@dataclass(frozen=True)
class Live:
    id: int
    user_id: int
    stale: bool          # last seen more than a minute ago: time to touch() it


_LIVE = ("s.revoked_at IS NULL AND s.last_seen_at > now() - make_interval(mins => :idle) "
         "AND s.created_at > now() - make_interval(hours => :max_hours)")


def _limits(limits):
    return {"idle": int(limits.idle_minutes), "max_hours": int(limits.max_hours)}


def _address(raw):
    """The client address as the inet column takes it, or None (a Unix-socket peer has none)."""
    try:
        return str(ipaddress.ip_address(raw or ""))
    except ValueError:
        return None


def start(conn, user_id, address=None, user_agent=None):
    """A new session for `user_id`; returns its token, which is never stored and cannot be shown again."""
    token = secrets.token_urlsafe(32)
    conn.execute(text("INSERT INTO staff_sessions (user_id, token_hash, address, user_agent) "
                      "VALUES (:u, :h, CAST(:a AS inet), :ua)"),
                 {"u": user_id, "h": digest(token), "a": _address(address),
                  "ua": (user_agent or "")[:USER_AGENT_MAX] or None})
    return token


def lookup(conn, token, limits=Limits()):
    """The live session `token` names (Live), or None when it is unknown, revoked, idle or too old."""
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX:
        return None
    row = conn.execute(text(f"""
        SELECT s.id, s.user_id, s.last_seen_at < now() - interval '1 minute' AS stale
        FROM staff_sessions s WHERE s.token_hash = :h AND {_LIVE}"""), {"h": digest(token), **_limits(limits)}).first()
    return Live(row.id, row.user_id, row.stale) if row else None


def touch(conn, session_id):
    """Record that the session was used now. Callers do it only when lookup() says it is stale, so a
    session costs one write a minute, not one per request; the WHERE keeps two requests racing on the
    same minute from writing twice."""
    conn.execute(text("UPDATE staff_sessions SET last_seen_at = now() "
                      "WHERE id = :id AND last_seen_at < now() - interval '1 minute'"), {"id": session_id})


def revoke(conn, token, reason="signed out"):
    """End the session `token` names; True when there was a live one."""
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX:
        return False
    return conn.execute(text("UPDATE staff_sessions SET revoked_at = now(), revoked_reason = :r "
                             "WHERE token_hash = :h AND revoked_at IS NULL RETURNING id"),
                        {"h": digest(token), "r": reason}).first() is not None


def revoke_one(conn, user_id, session_id, reason="ended by an administrator"):
    """End one of `user_id`'s sessions by its id; True when it was still open."""
    return conn.execute(text("UPDATE staff_sessions SET revoked_at = now(), revoked_reason = :r "
                             "WHERE id = :id AND user_id = :u AND revoked_at IS NULL RETURNING id"),
                        {"id": session_id, "u": user_id, "r": reason}).first() is not None


def revoke_all(conn, user_id, reason="signed out everywhere"):
    """End every open session of `user_id`; returns how many there were."""
    return len(conn.execute(text("UPDATE staff_sessions SET revoked_at = now(), revoked_reason = :r "
                                 "WHERE user_id = :u AND revoked_at IS NULL RETURNING id"),
                            {"u": user_id, "r": reason}).all())


def live(conn, user_id, limits=Limits()):
    """`user_id`'s live sessions, most recently used first: id, created_at, last_seen_at, address, user_agent."""
    return [dict(r._mapping) for r in conn.execute(text(f"""
        SELECT s.id, s.created_at, s.last_seen_at, host(s.address) AS address, s.user_agent
        FROM staff_sessions s WHERE s.user_id = :u AND {_LIVE}
        ORDER BY s.last_seen_at DESC, s.id DESC"""), {"u": user_id, **_limits(limits)})]


def live_counts(conn, limits=Limits()):
    """{user id: (number of live sessions, when one was last used)} for every user who has one."""
    return {r.user_id: (r.n, r.last_seen) for r in conn.execute(text(f"""
        SELECT s.user_id, count(*) AS n, max(s.last_seen_at) AS last_seen
        FROM staff_sessions s WHERE {_LIVE} GROUP BY s.user_id"""), _limits(limits))}
