"""contact_audit: who viewed or changed a caller's contact details, when, and from where

One row per contact shown or changed (or per request when it had no contact). No foreign keys on
purpose: the trail must outlive the request and the contact it speaks of (retention deletes them).
Field names only, never the values, so the trail itself holds no personal data beyond the staff actor.

Revision ID: 0008
Revises: 0001
"""
from alembic import op

revision = "0008"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
    CREATE TABLE IF NOT EXISTS contact_audit (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        actor text NOT NULL,
        action text NOT NULL CHECK (action IN ('view', 'create', 'update', 'delete', 'export')),
        request_id bigint,
        contact_id bigint,
        fields text[] NOT NULL DEFAULT '{}',
        context text,
        ip inet
    )""")
    op.execute("CREATE INDEX IF NOT EXISTS contact_audit_request ON contact_audit (request_id, at)")
    op.execute("CREATE INDEX IF NOT EXISTS contact_audit_actor ON contact_audit (actor, at)")


def downgrade():
    op.execute("DROP TABLE IF EXISTS contact_audit")
