"""index service_requests.duplicate_of

Deleting (or archiving) requests checks the self-referencing foreign key duplicate_of row by row; with
no index on it every deleted row scanned the whole table, so removing a bulk import of 30k rows took
minutes. Partial: almost every request has duplicate_of NULL, and intake should not pay for those.

Revision ID: 0007
Revises: 0001
"""
from alembic import op

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE INDEX IF NOT EXISTS service_requests_duplicate_of ON service_requests (duplicate_of) "
               "WHERE duplicate_of IS NOT NULL")


def downgrade():
    op.execute("DROP INDEX IF EXISTS service_requests_duplicate_of")
