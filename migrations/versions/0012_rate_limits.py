"""rate_limits: the rate limiter's counters, shared by every web worker and host

Revision ID: 0012
Revises: 0001

UNLOGGED: a counter is worth nothing after a crash (PostgreSQL empties the table then), and writes to
it need no WAL, so a limited request's count costs no fsync.
"""
from alembic import op

revision = "0012"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        CREATE UNLOGGED TABLE rate_limits (
            key text PRIMARY KEY,
            hits integer NOT NULL,
            expires_at timestamptz NOT NULL)""")


def downgrade():
    op.drop_table("rate_limits")
