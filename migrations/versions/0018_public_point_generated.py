"""the public point is a generated column; a request carries its service's sensitivity, held by a key

Revision ID: 0018
Revises: 0017

Since 0003 a plpgsql trigger computed service_requests.public_geom on every insert (a function call and a
services lookup per row) and another one re-computed a whole service's points when its sensitivity
changed. On the intake statement that trigger was the largest avoidable cost on the database side
(switched off: 1,321 -> 1,608 tx/s at 8 clients, PostgreSQL CPU 1.25 -> 1.00 ms per request).

Now the same guarantee comes from declarations PostgreSQL checks by itself:
- `service_requests.sensitive` is a copy of the service's flag that cannot differ from it: a composite
  foreign key (service_code, sensitive) -> services (code, sensitive), ON UPDATE CASCADE, so changing a
  service's sensitivity rewrites its requests' copies;
- `public_geom` is GENERATED ALWAYS AS pin311_public_point(geom, sensitive): no writer can set it, and it
  follows every change of the point or of the flag.
A writer that leaves `sensitive` out (or changes service_code without it) gets it filled by a trigger
that fires only then (its WHEN clause is checked without calling any function); intake and the bulk
loader give it, so their rows never call plpgsql.
"""
from alembic import op
from sqlalchemy import text

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

FILL = """
CREATE FUNCTION pin311_request_sensitivity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.sensitive := (SELECT sensitive FROM services WHERE code = NEW.service_code);
    RETURN NEW;
END $$
"""

# as 0003 wrote them
KEEP_PUBLIC_POINT = """
CREATE FUNCTION pin311_set_public_point() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- an unknown service counts as sensitive: coarsen when in doubt
    NEW.public_geom := pin311_public_point(NEW.geom,
        coalesce((SELECT sensitive FROM services WHERE code = NEW.service_code), true));
    RETURN NEW;
END $$
"""
RECOARSEN = """
CREATE FUNCTION pin311_service_sensitivity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE service_requests SET public_geom = pin311_public_point(geom, NEW.sensitive)
     WHERE service_code = NEW.code;
    RETURN NULL;
END $$
"""
NOT_BULK = "current_setting('pin311.bulk', true) IS DISTINCT FROM 'on'"

# 0013's function with PostGIS's functions named with their schema: a generated column's expression is
# also evaluated by pg_restore, which runs with an empty search_path ("function st_transform(...) does not
# exist" otherwise). No SET search_path on the function: that would stop PostgreSQL inlining it.
PUBLIC_POINT = """
CREATE OR REPLACE FUNCTION pin311_public_point(g geometry, sensitive boolean) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN sensitive
              THEN {s}.ST_Transform({s}.ST_SetSRID({s}.ST_SnapToGrid({s}.ST_Transform(g, 3857),
                                                 250 / cos(radians(round({s}.ST_Y(g))))), 3857), 4326)
              ELSE g END
$$
"""


def _view():
    """The public view's definition as it stands (it reads public_geom, so it is dropped and made again)."""
    return op.get_bind().execute(text("SELECT pg_get_viewdef('public_requests'::regclass, true)")).scalar()


def _postgis_schema():
    return op.get_bind().execute(text(
        "SELECT quote_ident(extnamespace::regnamespace::text) FROM pg_extension WHERE extname = 'postgis'")).scalar()


def upgrade():
    view = _view()
    op.execute(PUBLIC_POINT.format(s=_postgis_schema()))
    op.execute("ALTER TABLE services ADD CONSTRAINT services_code_sensitive UNIQUE (code, sensitive)")
    op.execute("ALTER TABLE service_requests ADD COLUMN sensitive boolean")
    op.execute("ALTER TABLE service_requests DISABLE TRIGGER USER")     # a copy of a column, nothing else moves
    op.execute("UPDATE service_requests r SET sensitive = s.sensitive FROM services s WHERE s.code = r.service_code")
    op.execute("ALTER TABLE service_requests ENABLE TRIGGER USER")
    op.execute("ALTER TABLE service_requests ALTER COLUMN sensitive SET NOT NULL")
    op.execute("""ALTER TABLE service_requests ADD CONSTRAINT service_requests_service_sensitivity
                  FOREIGN KEY (service_code, sensitive) REFERENCES services (code, sensitive) ON UPDATE CASCADE""")
    op.execute(FILL)
    op.execute("""CREATE TRIGGER service_requests_sensitivity BEFORE INSERT ON service_requests FOR EACH ROW
                  WHEN (NEW.sensitive IS NULL) EXECUTE FUNCTION pin311_request_sensitivity()""")
    op.execute("""CREATE TRIGGER service_requests_sensitivity_change BEFORE UPDATE OF service_code
                  ON service_requests FOR EACH ROW
                  WHEN (NEW.service_code IS DISTINCT FROM OLD.service_code
                        AND NEW.sensitive IS NOT DISTINCT FROM OLD.sensitive)
                  EXECUTE FUNCTION pin311_request_sensitivity()""")

    op.execute("DROP TRIGGER service_requests_public_point ON service_requests")
    op.execute("DROP TRIGGER service_requests_public_point_update ON service_requests")
    op.execute("DROP FUNCTION pin311_set_public_point()")
    op.execute("DROP TRIGGER services_sensitivity ON services")
    op.execute("DROP FUNCTION pin311_service_sensitivity_changed()")
    op.execute("DROP VIEW public_requests")
    op.execute("ALTER TABLE service_requests DROP COLUMN public_geom")
    op.execute("""ALTER TABLE service_requests ADD COLUMN public_geom geometry(Point, 4326)
                  GENERATED ALWAYS AS (pin311_public_point(geom, sensitive)) STORED""")
    op.execute("CREATE INDEX service_requests_public_geom_gist ON service_requests USING gist (public_geom)")
    op.execute(f"CREATE VIEW public_requests AS {view}")


def downgrade():
    view = _view()
    op.execute("DROP VIEW public_requests")
    op.execute("ALTER TABLE service_requests DROP COLUMN public_geom")
    op.execute("ALTER TABLE service_requests ADD COLUMN public_geom geometry(Point, 4326)")
    op.execute("ALTER TABLE service_requests DISABLE TRIGGER USER")
    op.execute("UPDATE service_requests SET public_geom = pin311_public_point(geom, sensitive)")
    op.execute("ALTER TABLE service_requests ENABLE TRIGGER USER")
    op.execute("CREATE INDEX service_requests_public_geom_gist ON service_requests USING gist (public_geom)")
    op.execute(f"CREATE VIEW public_requests AS {view}")
    op.execute(KEEP_PUBLIC_POINT)
    op.execute(f"""CREATE TRIGGER service_requests_public_point BEFORE INSERT ON service_requests FOR EACH ROW
                   WHEN ({NOT_BULK} OR NEW.public_geom IS NULL)
                   EXECUTE FUNCTION pin311_set_public_point()""")
    op.execute("""CREATE TRIGGER service_requests_public_point_update BEFORE UPDATE OF geom, service_code
                  ON service_requests FOR EACH ROW EXECUTE FUNCTION pin311_set_public_point()""")
    op.execute(RECOARSEN)
    op.execute("""CREATE TRIGGER services_sensitivity AFTER UPDATE OF sensitive ON services FOR EACH ROW
                  WHEN (OLD.sensitive IS DISTINCT FROM NEW.sensitive)
                  EXECUTE FUNCTION pin311_service_sensitivity_changed()""")
    op.execute("DROP TRIGGER service_requests_sensitivity_change ON service_requests")
    op.execute("DROP TRIGGER service_requests_sensitivity ON service_requests")
    op.execute("DROP FUNCTION pin311_request_sensitivity()")
    op.execute("ALTER TABLE service_requests DROP CONSTRAINT service_requests_service_sensitivity")
    op.execute("ALTER TABLE service_requests DROP COLUMN sensitive")
    op.execute("ALTER TABLE services DROP CONSTRAINT services_code_sensitive")
    op.execute(PUBLIC_POINT.replace("{s}.", ""))      # 0013's text again
