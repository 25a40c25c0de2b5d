"""public view of requests and data versions for map caches

Revision ID: 0003
Revises: 0001

`public_requests` is THE public view of service requests (issue 8): no contacts, no descriptions,
sensitive services snapped to a 250 m grid (in EPSG:3857) with a street-only address and no photo,
non-public services left out. Everything public (tiles, OGC API, FeatureServer, public pages,
published layers) reads it.

The public point is stored (service_requests.public_geom, GiST-indexed) and kept by triggers: on
insert or a change of geom/service_code, and for all of a service's requests when its `sensitive`
flag changes. So map queries filter the public point through an index instead of computing the
snap for every candidate row (a million requests: tiles at the speed of the raw ST_AsMVT).

`data_versions` holds one counter per data source ("requests", "layers"), bumped when the data
change, so tile and feature caches in any number of workers key on it instead of sharing state.
The bump runs in a deferred trigger (at commit, once per transaction), so the counter row is locked
only for the instant of the commit and a reader never sees a new version with old data.
"""
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

PUBLIC_VIEW = r"""
CREATE VIEW public_requests AS
SELECT r.id AS objectid,
       r.public_id,
       r.service_code,
       s.name AS service_name,
       s.group_name AS service_group,
       r.status,
       r.closure_reason,
       r.requested_at,
       r.updated_at,
       r.expected_at,
       r.closed_at,
       CASE WHEN s.sensitive
            THEN nullif(btrim(split_part(regexp_replace(coalesce(r.address, ''),
                                                        '^\s*[0-9][0-9A-Za-z/-]*\s+', ''), ',', 1)), '')
            ELSE r.address END AS address,
       coalesce((SELECT jsonb_object_agg(e.key, e.value ->> 'code') FROM jsonb_each(r.districts) e
                  WHERE jsonb_typeof(e.value) = 'object'), '{}'::jsonb) AS districts,
       s.sensitive AS coarsened,
       CASE WHEN s.sensitive THEN NULL ELSE r.media_url END AS media_url,
       r.public_geom AS geom
  FROM service_requests r
  JOIN services s ON s.code = r.service_code
 WHERE s.public AND r.public_geom IS NOT NULL
"""

PUBLIC_POINT = """
CREATE FUNCTION pin311_public_point(g geometry, sensitive boolean) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN sensitive
              THEN ST_Transform(ST_SetSRID(ST_SnapToGrid(ST_Transform(g, 3857), 250), 3857), 4326)
              ELSE g END
$$
"""

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

BUMP = """
CREATE FUNCTION pin311_bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    flag text := 'pin311.data_version_bumped_' || TG_ARGV[0];
BEGIN
    -- once per transaction: row-level deferred triggers fire for every row at commit
    IF coalesce(current_setting(flag, true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config(flag, 'on', true);
    INSERT INTO data_versions (name, version, changed_at) VALUES (TG_ARGV[0], 1, now())
    ON CONFLICT (name) DO UPDATE SET version = data_versions.version + 1, changed_at = now();
    RETURN NULL;
END $$
"""

WATCHED = (("service_requests", "requests"), ("services", "requests"),
           ("districts", "layers"), ("parcels", "layers"), ("layers", "layers"))


def upgrade():
    op.execute(PUBLIC_POINT)
    op.execute("ALTER TABLE service_requests ADD COLUMN public_geom geometry(Point, 4326)")
    op.execute("UPDATE service_requests r SET public_geom = pin311_public_point(r.geom, s.sensitive) "
               "FROM services s WHERE s.code = r.service_code")
    op.execute("CREATE INDEX service_requests_public_geom_gist ON service_requests USING gist (public_geom)")
    op.execute(KEEP_PUBLIC_POINT)
    op.execute("""CREATE TRIGGER service_requests_public_point BEFORE INSERT OR UPDATE OF geom, service_code
                  ON service_requests FOR EACH ROW EXECUTE FUNCTION pin311_set_public_point()""")
    op.execute(RECOARSEN)
    op.execute("""CREATE TRIGGER services_sensitivity AFTER UPDATE OF sensitive ON services FOR EACH ROW
                  WHEN (OLD.sensitive IS DISTINCT FROM NEW.sensitive)
                  EXECUTE FUNCTION pin311_service_sensitivity_changed()""")
    op.execute(PUBLIC_VIEW)
    op.execute("""CREATE TABLE data_versions (
        name text PRIMARY KEY, version bigint NOT NULL DEFAULT 0, changed_at timestamptz NOT NULL DEFAULT now())""")
    op.execute("INSERT INTO data_versions (name, version) VALUES ('requests', 1), ('layers', 1)")
    op.execute(BUMP)
    for table, source in WATCHED:
        op.execute(f"""CREATE CONSTRAINT TRIGGER {table}_data_version AFTER INSERT OR UPDATE OR DELETE ON {table}
                       DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
                       EXECUTE FUNCTION pin311_bump_data_version('{source}')""")
        op.execute(f"""CREATE TRIGGER {table}_data_version_truncate AFTER TRUNCATE ON {table}
                       FOR EACH STATEMENT EXECUTE FUNCTION pin311_bump_data_version('{source}')""")


def downgrade():
    for table, _ in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_data_version_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_data_version ON {table}")
    op.execute("DROP FUNCTION IF EXISTS pin311_bump_data_version()")
    op.execute("DROP TABLE IF EXISTS data_versions")
    op.execute("DROP VIEW IF EXISTS public_requests")
    op.execute("DROP TRIGGER IF EXISTS services_sensitivity ON services")
    op.execute("DROP FUNCTION IF EXISTS pin311_service_sensitivity_changed()")
    op.execute("DROP TRIGGER IF EXISTS service_requests_public_point ON service_requests")
    op.execute("DROP FUNCTION IF EXISTS pin311_set_public_point()")
    op.execute("DROP INDEX IF EXISTS service_requests_public_geom_gist")
    op.execute("ALTER TABLE service_requests DROP COLUMN IF EXISTS public_geom")
    op.execute("DROP FUNCTION IF EXISTS pin311_public_point(geometry, boolean)")
