"""sms_conversations: a report by text that still needs answers (one open conversation per phone)

Revision ID: 0014
Revises: 0013

"dead raccoon at 615 E Fourth St" names a category whose required question ("How big is the animal?")
the first text does not answer. The place is checked first (inside the city, found), then the report
waits here while the texter answers the category's required questions one by one; the last answer files
it through the one intake path. A conversation older than an hour is forgotten.
"""
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        CREATE TABLE sms_conversations (
            phone text PRIMARY KEY,
            service_code text NOT NULL REFERENCES services (code),
            lat float8 NOT NULL,
            lon float8 NOT NULL,
            address_id bigint,
            body text NOT NULL,
            answers jsonb NOT NULL DEFAULT '{}'::jsonb,
            asking text NOT NULL,
            last_message_sid text,
            updated_at timestamptz NOT NULL DEFAULT now())""")
    op.execute("COMMENT ON TABLE sms_conversations IS "
               "'reports by text waiting for answers to required questions: phone numbers, staff only'")


def downgrade():
    op.execute("DROP TABLE sms_conversations")
