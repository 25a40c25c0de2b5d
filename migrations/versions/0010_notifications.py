"""notifications sent to callers, and SMS opt-outs

Revision ID: 0010
Revises: 0001

One row per (event, contact, channel) delivery. The row is written and committed before the message
is handed to the provider and marked sent right after, so a worker killed mid-batch never sends a
message twice except in the instant between the provider accepting it and our commit.
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("event_id", sa.BigInteger, sa.ForeignKey("request_events.id", ondelete="CASCADE"), nullable=False),
        sa.Column("contact_id", sa.BigInteger, sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="sending"),
        sa.Column("provider_id", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("event_id", "contact_id", "channel", name="notifications_once"),
        sa.CheckConstraint("channel IN ('sms', 'email')", name="notifications_channel"),
        sa.CheckConstraint("status IN ('sending', 'sent', 'skipped')", name="notifications_status"),
    )
    op.create_table(
        "sms_optouts",
        sa.Column("phone", sa.Text, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )


def downgrade():
    op.drop_table("sms_optouts")
    op.drop_table("notifications")
