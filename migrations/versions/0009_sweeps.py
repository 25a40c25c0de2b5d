"""sweeps: area sweeps ("Clean Sweep") — one crew, one target date, every open request in an area

A sweep keeps the area it was drawn with (or the union of the districts picked) and the requests it
took at creation (sweep_requests), so its progress is "closed of taken" even after the area changes.

Revision ID: 0009
Revises: 0001
"""
from alembic import op

revision = "0009"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
    CREATE TABLE IF NOT EXISTS sweeps (
        id bigserial PRIMARY KEY,
        name text NOT NULL,
        crew_id integer NOT NULL REFERENCES crews(id),
        target_date date NOT NULL,
        area geometry(MultiPolygon, 4326) NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("""
    CREATE TABLE IF NOT EXISTS sweep_requests (
        sweep_id bigint NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
        request_id bigint NOT NULL REFERENCES service_requests(id) ON DELETE CASCADE,
        PRIMARY KEY (sweep_id, request_id)
    )""")
    op.execute("CREATE INDEX IF NOT EXISTS sweep_requests_request ON sweep_requests (request_id)")


def downgrade():
    op.execute("DROP TABLE IF EXISTS sweep_requests")
    op.execute("DROP TABLE IF EXISTS sweeps")
