"""users: drop failed_logins and locked_until

Revision ID: 0015
Revises: 0014

Sign-in lockout is counted per name and client address in the rate-limit storage (app/auth/lockout.py),
so a guesser from one address cannot lock a user out everywhere; these per-user columns are no longer
read or written.
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_column("users", "locked_until")
    op.drop_column("users", "failed_logins")


def downgrade():
    op.add_column("users", sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False))
    op.add_column("users", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
