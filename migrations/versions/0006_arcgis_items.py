"""ArcGIS Online / Enterprise items published by pin311

Revision ID: 0006
Revises: 0001

`arcgis_items` remembers, per portal, which item and layer URL each published thing became
(key "requests", "district:<layer>", "webmap", "dashboard"), so that the outbox worker knows where to
apply edits and a second `pin311 arcgis publish` reuses the items instead of making new ones.
"""
from alembic import op

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""CREATE TABLE arcgis_items (
        portal_url text NOT NULL,
        key text NOT NULL,
        item_id text NOT NULL,
        url text,
        title text NOT NULL,
        published_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (portal_url, key))""")


def downgrade():
    op.execute("DROP TABLE IF EXISTS arcgis_items")
