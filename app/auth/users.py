"""Staff accounts: lookup, password check, creation. Passwords hashed with scrypt."""
import logging
import secrets
from dataclasses import dataclass
from functools import cache

from flask_login import UserMixin
from sqlalchemy import text
from werkzeug.security import check_password_hash, generate_password_hash

from gis import sessions
from gis.errors import InvalidInput
from gis.models import ROLES

log = logging.getLogger(__name__)
HOME = {"agent": "agent.console", "supervisor": "agent.console", "crew": "crew.near_me",
        "analyst": "dashboards.index", "admin": "core.home"}


@dataclass
class User(UserMixin):
    id: int
    username: str
    full_name: str
    role: str
    active: bool
    crew_ids: tuple
    session_token: str | None = None      # the signed-in session's (gis.sessions), when there is one
    session_id: int | None = None

    def get_id(self):
        """What the session cookie keeps: only the random token of a server-side session (gis.sessions),
        which sign-out, an administrator, a new password or deactivation revokes (see load)."""
        if not self.session_token:
            raise ValueError("a user is signed in through a session: gis.sessions.start")
        return self.session_token

    @property
    def is_active(self):
        return self.active


def home_endpoint(user):
    return HOME.get(user.role, "core.home")


_SELECT = text("""
    SELECT u.id, u.username, coalesce(u.full_name, u.username), u.role, u.active,
           coalesce(array_agg(m.crew_id) FILTER (WHERE m.crew_id IS NOT NULL), '{}')
    FROM users u LEFT JOIN crew_members m ON m.user_id = u.id
    WHERE u.id = :id GROUP BY u.id""")


def get(conn, user_id):
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        return None
    row = conn.execute(_SELECT, {"id": user_id}).first()
    return User(row[0], row[1], row[2], row[3], row[4], tuple(row[5])) if row else None


def load(conn, token, limits=sessions.Limits()):
    """The user whose live session `token` names, or None: Flask-Login asks on every request, so a
    revoked, idle or expired session, or a deactivated account, is signed out at its next request."""
    found = sessions.lookup(conn, token, limits)
    user = get(conn, found.user_id) if found else None
    if user is None or not user.active:
        return None
    if found.stale:
        # In a transaction of its own: the request's may hold locks for its whole length, and a request
        # that only reads never commits its own.
        with conn.engine.begin() as own:
            sessions.touch(own, found.id)
    user.session_token, user.session_id = token, found.id
    return user


def sign_in(conn, user, address=None, user_agent=None):
    """Start a server-side session for `user` (returned, ready for login_user)."""
    user.session_token = sessions.start(conn, user.id, address, user_agent)
    return user


def set_active(conn, user_id, active):
    """(De)activate an account; True when it exists. Deactivating ends its sessions (0017's trigger)."""
    return conn.execute(text("UPDATE users SET active = :a WHERE id = :id RETURNING id"),
                        {"a": bool(active), "id": user_id}).first() is not None


def list_all(conn):
    """Every account, by username: id, username, full_name, role, active, created_at."""
    return [dict(r._mapping) for r in conn.execute(text(
        "SELECT id, username, full_name, role, active, created_at FROM users ORDER BY username"))]


# Every refusal says the same, so the answer never tells whether a name exists, is locked or is inactive.
REFUSED = "Wrong username or password. After several failed attempts sign-in pauses for a few minutes."


@cache
def _dummy_hash():
    """A hash to check unknown names against, made once: then every attempt costs exactly one hash check,
    so neither the answer nor its time tells an unknown name from a real one."""
    return generate_password_hash(secrets.token_hex(16))


def authenticate(conn, username, password, refusing=None):
    """(user, None) on success, (None, REFUSED) otherwise. `refusing` is why the caller refuses this attempt
    whatever the password (too many failures, see lockout), or None; the answer is the same either way."""
    row = conn.execute(text("SELECT id, password_hash, active FROM users WHERE username = :u"),
                       {"u": username}).first()
    matches = check_password_hash(row.password_hash if row else _dummy_hash(), password)
    if row is None:
        reason = "no such user"
    elif refusing:
        reason = refusing
    elif not row.active:
        reason = "account inactive"
    elif not matches:
        reason = "wrong password"
    else:
        return get(conn, row.id), None
    log.warning("sign-in refused for %r: %s", username[:80], reason)
    return None, REFUSED


PASSWORD_MIN = 10


def _check_new_password(password, field="password"):
    if not isinstance(password, str) or len(password) < PASSWORD_MIN:
        raise InvalidInput(f"password must have at least {PASSWORD_MIN} characters", field=field)


def create(conn, username, password, role, full_name=None, crew_codes=()):
    """Create or update a staff account (idempotent by username)."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    _check_new_password(password)
    user_id = conn.execute(text("""
        INSERT INTO users (username, password_hash, role, full_name) VALUES (:u, :p, :r, :n)
        ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role,
            full_name = excluded.full_name
        RETURNING id"""), {"u": username, "p": generate_password_hash(password), "r": role,
                           "n": full_name}).scalar_one()
    conn.execute(text("DELETE FROM crew_members WHERE user_id = :id"), {"id": user_id})
    for code in crew_codes:
        found = conn.execute(text("INSERT INTO crew_members (user_id, crew_id) SELECT :id, id FROM crews "
                                  "WHERE code = :c RETURNING crew_id"), {"id": user_id, "c": code}).first()
        if not found:
            raise InvalidInput(f"no crew with code {code!r}", field="crew")
    return user_id


def set_password(conn, user_id, password):
    """Give the account `user_id` a new password; True when it exists. Every session of the account ends
    with it (0017's trigger), copied cookies included: what an administrator's reset of someone's password
    must do."""
    _check_new_password(password, "new_password")
    return conn.execute(text("UPDATE users SET password_hash = :p WHERE id = :id RETURNING id"),
                        {"p": generate_password_hash(password), "id": user_id}).first() is not None


def change_own_password(conn, user, current, new, address=None, user_agent=None):
    """`user` (signed in) changes their own password, knowing the current one: every session of the account
    ends, the one making the change included, and this browser gets a new session at once (returned in
    `user`, ready for login_user), so the person stays signed in here while a copy of any cookie of theirs,
    this browser's old one too, is refused. InvalidInput names the field at fault."""
    row = conn.execute(text("SELECT password_hash FROM users WHERE id = :id"), {"id": user.id}).first()
    if row is None or not check_password_hash(row.password_hash, current or ""):
        raise InvalidInput("your current password is not right", field="current_password")
    if new == current:
        raise InvalidInput("the new password must differ from the current one", field="new_password")
    set_password(conn, user.id, new)
    return sign_in(conn, user, address, user_agent)
