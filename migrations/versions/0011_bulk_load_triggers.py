"""bulk loads skip the per-row triggers whose work they do once, set-based

Revision ID: 0011
Revises: 0003

On 0003's branch (public point and data versions), not beside it off 0001 like the other features: it
changes 0003's triggers, so it cannot be applied or kept without it. (With down_revision 0001 and
depends_on 0003, alembic_version would hold 0011 in place of 0003 and /healthz, which expects every
head of the scripts in alembic_version, would call the schema behind.)

A bulk load (gis.bulk, in one transaction that runs `SET LOCAL pin311.bulk = 'on'`) inserts 100k+
rows into service_requests. Three row triggers then cost far more than the insert itself:

- `service_requests_public_point` (0003, BEFORE INSERT): a plpgsql call and a services lookup per
  row, ~50 µs each — half of the whole load. The loader computes public_geom in its INSERT … SELECT
  with the same pin311_public_point() and the same rule (an unknown service counts as sensitive).
  The trigger is now split: on INSERT it is skipped only when the bulk flag is on AND the row
  already carries a public point (a bulk writer that forgets it still gets it computed); on UPDATE
  OF geom, service_code it always fires, exactly as before.
- `service_requests_data_version` (0003, deferred constraint trigger): queued per row, fired per
  row at commit. Also split: INSERTs under the bulk flag skip it (the loader bumps data_versions
  once, last thing before commit); UPDATE and DELETE always fire it.
- `service_requests_notify` (0001, AFTER INSERT/UPDATE): its function already returned at once
  under the bulk flag; the WHEN clause now keeps the function from being called at all (same
  behaviour, no per-row call). The loader sends one summary notice instead.

Without the flag every writer behaves exactly as before.
"""
from alembic import op

revision = "0011"
down_revision = "0003"
branch_labels = None
depends_on = None

NOT_BULK = "current_setting('pin311.bulk', true) IS DISTINCT FROM 'on'"


def upgrade():
    op.execute("DROP TRIGGER service_requests_public_point ON service_requests")
    op.execute(f"""CREATE TRIGGER service_requests_public_point BEFORE INSERT ON service_requests FOR EACH ROW
                   WHEN ({NOT_BULK} OR NEW.public_geom IS NULL)
                   EXECUTE FUNCTION pin311_set_public_point()""")
    op.execute("""CREATE TRIGGER service_requests_public_point_update BEFORE UPDATE OF geom, service_code
                  ON service_requests FOR EACH ROW EXECUTE FUNCTION pin311_set_public_point()""")

    op.execute("DROP TRIGGER service_requests_data_version ON service_requests")
    op.execute(f"""CREATE CONSTRAINT TRIGGER service_requests_data_version AFTER INSERT ON service_requests
                   DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({NOT_BULK})
                   EXECUTE FUNCTION pin311_bump_data_version('requests')""")
    op.execute("""CREATE CONSTRAINT TRIGGER service_requests_data_version_change
                  AFTER UPDATE OR DELETE ON service_requests DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
                  EXECUTE FUNCTION pin311_bump_data_version('requests')""")

    op.execute("DROP TRIGGER service_requests_notify ON service_requests")
    op.execute(f"""CREATE TRIGGER service_requests_notify AFTER INSERT OR UPDATE OF status, crew_id, service_code
                   ON service_requests FOR EACH ROW WHEN ({NOT_BULK})
                   EXECUTE FUNCTION pin311_notify_request()""")


def downgrade():
    # Back to the triggers exactly as 0001 and 0003 created them.
    op.execute("DROP TRIGGER IF EXISTS service_requests_notify ON service_requests")
    op.execute("""CREATE TRIGGER service_requests_notify AFTER INSERT OR UPDATE OF status, crew_id, service_code
                  ON service_requests FOR EACH ROW EXECUTE FUNCTION pin311_notify_request()""")

    op.execute("DROP TRIGGER IF EXISTS service_requests_data_version_change ON service_requests")
    op.execute("DROP TRIGGER IF EXISTS service_requests_data_version ON service_requests")
    op.execute("""CREATE CONSTRAINT TRIGGER service_requests_data_version AFTER INSERT OR UPDATE OR DELETE
                  ON service_requests DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
                  EXECUTE FUNCTION pin311_bump_data_version('requests')""")

    op.execute("DROP TRIGGER IF EXISTS service_requests_public_point_update ON service_requests")
    op.execute("DROP TRIGGER IF EXISTS service_requests_public_point ON service_requests")
    op.execute("""CREATE TRIGGER service_requests_public_point BEFORE INSERT OR UPDATE OF geom, service_code
                  ON service_requests FOR EACH ROW EXECUTE FUNCTION pin311_set_public_point()""")
