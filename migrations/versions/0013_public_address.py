"""the public address is never the caller's own words; sensitive requests publish no address; a metric grid

Revision ID: 0013
Revises: 0011

Three privacy fixes to what public_requests (0003) publishes:

- A request given coordinates AND a text ("outside Jane Roe's house, call 617-555-0166", or the
  console's "near 615 E Fourth St (45 m)") stored that text as its address, and the public view
  published it word for word. The caller's words now go to `address_note` (staff only); `address` is
  the gazetteer's address at the spot (within 30 m) or nothing. Existing rows made by intake (not by a
  bulk load of the City's own records) whose address is not the gazetteer's address at their spot are
  moved the same way.
- A sensitive request published its street ("Lindall Pl": five addresses within 33 m) and
  intersections: it now publishes no address; its point alone, coarsened, says where.
- The coarsening grid was 250 units of EPSG:3857, ~185 m on the ground at Boston's latitude. The cell
  is now 250 m on the ground: 250 / cos(latitude) units, with the latitude rounded to the degree so
  every point of a city falls on one grid. Sensitive requests' public points are recomputed.
"""
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None

# The intake statement's rule (gis/intake.py): the nearest gazetteer point, if within 30 m.
MOVE_CALLER_WORDS = """
WITH made_here AS (
  SELECT r.id, r.address,
         (SELECT n.address FROM (SELECT a.address, a.geom FROM address_points a ORDER BY a.geom <-> r.geom LIMIT 1) n
           WHERE ST_DWithin(n.geom::geography, r.geom::geography, 30)) AS gazetteer
    FROM service_requests r
   WHERE r.address IS NOT NULL AND r.address_id IS NULL
     AND NOT EXISTS (SELECT 1 FROM request_events e
                      WHERE e.request_id = r.id AND e.kind = 'created' AND e.actor = 'import'))
UPDATE service_requests r SET address_note = m.address, address = m.gazetteer
  FROM made_here m
 WHERE r.id = m.id AND m.address IS DISTINCT FROM m.gazetteer
"""

PUBLIC_POINT = """
CREATE OR REPLACE FUNCTION pin311_public_point(g geometry, sensitive boolean) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN sensitive
              THEN ST_Transform(ST_SetSRID(ST_SnapToGrid(ST_Transform(g, 3857),
                                                         250 / cos(radians(round(ST_Y(g))))), 3857), 4326)
              ELSE g END
$$
"""

OLD_PUBLIC_POINT = """
CREATE OR REPLACE FUNCTION pin311_public_point(g geometry, sensitive boolean) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN sensitive
              THEN ST_Transform(ST_SetSRID(ST_SnapToGrid(ST_Transform(g, 3857), 250), 3857), 4326)
              ELSE g END
$$
"""

RECOARSEN = """UPDATE service_requests r SET public_geom = pin311_public_point(r.geom, true)
                 FROM services s WHERE s.code = r.service_code AND s.sensitive"""

VIEW = r"""
CREATE OR REPLACE VIEW public_requests AS
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
       {address} AS address,
       coalesce((SELECT jsonb_object_agg(e.key, e.value ->> 'code') FROM jsonb_each(r.districts) e
                  WHERE jsonb_typeof(e.value) = 'object'), '{{}}'::jsonb) AS districts,
       s.sensitive AS coarsened,
       CASE WHEN s.sensitive THEN NULL ELSE r.media_url END AS media_url,
       r.public_geom AS geom
  FROM service_requests r
  JOIN services s ON s.code = r.service_code
 WHERE s.public AND r.public_geom IS NOT NULL
"""
ADDRESS = "CASE WHEN s.sensitive THEN NULL ELSE r.address END"
OLD_ADDRESS = r"""CASE WHEN s.sensitive
            THEN nullif(btrim(split_part(regexp_replace(coalesce(r.address, ''),
                                                        '^\s*[0-9][0-9A-Za-z/-]*\s+', ''), ',', 1)), '')
            ELSE r.address END"""


def upgrade():
    op.execute("ALTER TABLE service_requests ADD COLUMN address_note text")
    op.execute("COMMENT ON COLUMN service_requests.address_note IS "
               "'where the caller said it is, in their words: staff only, never published'")
    op.execute(MOVE_CALLER_WORDS)
    op.execute(VIEW.format(address=ADDRESS))
    op.execute(PUBLIC_POINT)
    op.execute(RECOARSEN)


def downgrade():
    op.execute(OLD_PUBLIC_POINT)
    op.execute(RECOARSEN)
    op.execute(VIEW.format(address=OLD_ADDRESS))
    op.execute("UPDATE service_requests SET address = address_note WHERE address_note IS NOT NULL")
    op.execute("ALTER TABLE service_requests DROP COLUMN address_note")
