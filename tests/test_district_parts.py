"""Migration 0019: locate reads the district polygons as small pieces, with the same answers as the whole ones."""
import random

from sqlalchemy import create_engine, inspect, pool, text

from app import schema
from gis.locate import locate_point
from gis.models import DistrictPart
from tests.test_bulk_migration import _down_to
from tests.test_platform import scratch_db  # noqa: F401

# What locate asked before 0019: the whole polygons.
WHOLE = text("""
SELECT coalesce(jsonb_object_agg(s.layer, jsonb_build_object('code', s.code, 'name', s.name)), '{}'::jsonb)
  FROM (SELECT DISTINCT ON (l.name) l.name AS layer, d.code, d.name
          FROM districts d JOIN layers l ON l.id = d.layer_id
         WHERE l.kind = 'district' AND ST_Covers(d.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
         ORDER BY l.name, d.code) s""")
INSIDE_WHOLE = text("""SELECT EXISTS (SELECT 1 FROM districts d JOIN layers l ON l.id = d.layer_id
                        WHERE l.kind = 'boundary' AND ST_Covers(d.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)))""")


def test_the_pieces_are_small_and_cover_exactly_their_district(conn):
    rows = conn.execute(text("""
        SELECT d.id, ST_Area(d.geom) AS whole, sum(ST_Area(p.geom)) AS pieces, count(p.*) AS n,
               max(ST_NPoints(p.geom)) AS most, bool_and(ST_Covers(d.geom, ST_PointOnSurface(p.geom))) AS inside,
               bool_and(p.code = d.code AND p.name IS NOT DISTINCT FROM d.name AND p.layer = l.name
                        AND p.kind = l.kind) AS same_labels
          FROM districts d JOIN layers l ON l.id = d.layer_id LEFT JOIN district_parts p ON p.district_id = d.id
         GROUP BY d.id""")).all()
    assert len(rows) > 300
    for row in rows:
        assert row.n > 0 and row.most <= 64 and row.inside and row.same_labels, row
        assert abs(row.pieces - row.whole) <= 1e-9 * row.whole, row
    assert max(r.n for r in rows) > 1, "the large polygons are cut"


def test_locate_answers_as_the_whole_polygons_do(conn):
    """Random points over the city and its harbour, and corners two neighbouring districts share (on both
    boundaries: the lowest code must still win)."""
    rng = random.Random(19)
    points = [(42.23 + rng.random() * 0.17, -71.19 + rng.random() * 0.20) for _ in range(400)]
    corners = conn.execute(text("""
        WITH v AS (SELECT l.id AS layer_id, (ST_DumpPoints(d.geom)).geom AS g FROM districts d
                     JOIN layers l ON l.id = d.layer_id WHERE l.name IN ('wards', 'precincts', 'police_districts'))
        SELECT ST_Y(v.g), ST_X(v.g) FROM v
         WHERE (SELECT count(*) FROM districts o WHERE o.layer_id = v.layer_id AND ST_Covers(o.geom, v.g)) > 1
         ORDER BY md5(ST_AsText(v.g)) LIMIT 300""")).all()
    assert len(corners) == 300, "the layers' neighbours share corners"
    for lat, lon in points + [tuple(c) for c in corners]:
        where = locate_point(conn, lat, lon)
        assert where.inside == conn.scalar(INSIDE_WHOLE, {"lat": lat, "lon": lon}), (lat, lon)
        assert where.districts == conn.scalar(WHOLE, {"lat": lat, "lon": lon}), (lat, lon)


def test_the_pieces_follow_every_change_of_a_district_and_its_layer(conn):
    lat, lon = 42.3505, -71.0605
    square = "ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(:x, :y), 4326), 0.002, 64))"
    layer = conn.scalar(text("INSERT INTO layers (name, kind) VALUES ('test_zones', 'district') RETURNING id"))
    district = conn.scalar(text(f"INSERT INTO districts (layer_id, code, name, geom) VALUES (:l, 'Z1', 'Zone 1', "
                                f"{square}) RETURNING id"), {"l": layer, "x": lon, "y": lat})
    assert locate_point(conn, lat, lon).districts["test_zones"] == {"code": "Z1", "name": "Zone 1"}
    conn.execute(text("UPDATE districts SET code = 'Z2', name = 'Zone 2' WHERE id = :d"), {"d": district})
    assert locate_point(conn, lat, lon).districts["test_zones"] == {"code": "Z2", "name": "Zone 2"}
    conn.execute(text("UPDATE layers SET name = 'test_areas' WHERE id = :l"), {"l": layer})
    found = locate_point(conn, lat, lon).districts
    assert "test_zones" not in found and found["test_areas"]["code"] == "Z2"
    conn.execute(text(f"UPDATE districts SET geom = {square} WHERE id = :d"),
                 {"d": district, "x": lon + 0.05, "y": lat})
    assert "test_areas" not in locate_point(conn, lat, lon).districts
    assert locate_point(conn, lat, lon + 0.05).districts["test_areas"]["code"] == "Z2"
    conn.execute(text("DELETE FROM layers WHERE id = :l"), {"l": layer})
    assert not conn.scalar(text("SELECT count(*) FROM district_parts WHERE district_id = :d"), {"d": district})
    conn.rollback()


def test_0019_up_and_down_alone(scratch_db):  # noqa: F811
    schema.upgrade(scratch_db)
    eng = create_engine(scratch_db, poolclass=pool.NullPool)
    try:
        with eng.connect() as c:
            assert {col["name"] for col in inspect(c).get_columns("district_parts")} == \
                {col.name for col in DistrictPart.__table__.columns}
        _down_to(scratch_db, "0018")
        with eng.connect() as c:
            assert c.scalar(text("SELECT to_regclass('district_parts')")) is None
            assert not c.scalar(text("SELECT count(*) FROM pg_proc WHERE proname IN "
                                     "('pin311_cut_district', 'pin311_layer_renamed')"))
        schema.upgrade(scratch_db)
        with eng.connect() as c:
            assert c.scalar(text("SELECT to_regclass('district_parts')")) is not None
    finally:
        eng.dispose()
