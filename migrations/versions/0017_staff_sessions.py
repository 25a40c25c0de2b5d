"""staff_sessions: staff sign-ins kept server-side, so that one can really be ended

Revision ID: 0017
Revises: 0016

A staff session lived only in the signed Flask cookie: a copy of it taken before sign-out (a shared
kiosk, a proxy's log) kept working until it expired, and reactivating an account revived its old
cookies. Now each sign-in is a row here; the cookie carries a random token whose SHA-256 is
`token_hash` (like api_keys.key_hash), and a session is honoured only while its row is not revoked and
not idle too long (gis/sessions.py).

The trigger ends every session of an account whose password changes or which is deactivated, whatever
writes the row (the CLI, an admin page, an UPDATE in psql), so reactivating it later revives nothing.

Sessions of the old form (the cookie named the user and a stamp of the password) are not honoured after
this migration: everyone signs in once more.
"""
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        CREATE TABLE staff_sessions (
            id bigserial PRIMARY KEY,
            user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            token_hash text NOT NULL UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_seen_at timestamptz NOT NULL DEFAULT now(),
            address inet,
            user_agent text,
            revoked_at timestamptz,
            revoked_reason text)""")
    op.execute("CREATE INDEX staff_sessions_user_live ON staff_sessions (user_id) WHERE revoked_at IS NULL")
    op.execute("""
        CREATE FUNCTION pin311_end_user_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE staff_sessions
               SET revoked_at = now(),
                   revoked_reason = CASE WHEN NEW.active THEN 'password changed' ELSE 'account deactivated' END
             WHERE user_id = NEW.id AND revoked_at IS NULL;
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE TRIGGER users_end_sessions AFTER UPDATE OF password_hash, active ON users FOR EACH ROW
        WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash OR (OLD.active AND NOT NEW.active))
        EXECUTE FUNCTION pin311_end_user_sessions()""")


def downgrade():
    op.execute("DROP TRIGGER users_end_sessions ON users")
    op.execute("DROP FUNCTION pin311_end_user_sessions()")
    op.execute("DROP TABLE staff_sessions")
