"""Locate on real data: Boston's 2015 311 cases against the City's own labels and a geopandas sjoin.

Both locate paths are checked: the single-point SQL (gis.locate.locate_point, the LOCATE statement that
intake embeds) and the in-memory STRtree path (gis.spatial_index, used by `pin311 locate` and the bulk
import). The thresholds are the data's own ceiling measured in ../shared/data/boston/SOURCES.md.
"""
import glob

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from gis.locate import locate_point
from gis.spatial_index import LayerIndex
from tests.conftest import SHARED, needs_shared

pytestmark = needs_shared()

CITY_HALL = (42.3594, -71.0587)   # the City's placeholder point for cases with no real location
SQL_SAMPLE = 2500
# (layer in the test db, file, code field, real CRS when the file mislabels it)
SHARED_LAYERS = (("shared_wards", "wards.geojson", "WARD", None),
                 ("shared_police_districts", "police_districts.geojson", "DISTRICT", None),
                 ("shared_precincts", "precincts.geojson", "WARD_PRECINCT", "EPSG:2249"),
                 ("shared_neighborhoods", "neighborhoods.geojson", "Name", "EPSG:2249"))


def _code(value):
    """Ward codes read as 5, 5.0 or "05" in different files: compare them as the integer text."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text_value = str(value).strip()
    try:
        return str(int(float(text_value)))
    except ValueError:
        return text_value


@pytest.fixture(scope="module")
def cases():
    files = sorted(glob.glob(str(SHARED / "311_cases_2015_by_type" / "*.csv")))
    assert len(files) == 158
    df = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False,
                                usecols=["CASE_ENQUIRY_ID", "LATITUDE", "LONGITUDE", "ward", "police_district"])
                    for f in files], ignore_index=True)
    df["lat"] = pd.to_numeric(df["LATITUDE"], errors="coerce")
    df["lon"] = pd.to_numeric(df["LONGITUDE"], errors="coerce")
    placeholder = (df["lat"].round(4) == CITY_HALL[0]) & (df["lon"].round(4) == CITY_HALL[1])
    df = df[~placeholder & df["lat"].notna() & df["lon"].notna()].reset_index(drop=True)
    df["ward_label"] = df["ward"].str.extract(r"(\d+)", expand=False).map(_code, na_action="ignore")
    return df


@pytest.fixture(scope="module")
def strtree(engine, cases):
    with engine.connect() as conn:
        index = LayerIndex(conn)
    return index.locate(cases["lon"].to_numpy(), cases["lat"].to_numpy())


def _agreement(ours, labels):
    labels = pd.Series(labels)
    has_label = labels.fillna("").to_numpy() != ""
    same = np.array([o == l for o, l in zip(ours, labels)])
    return same[has_label].mean(), int(has_label.sum())


def test_strtree_locate_agrees_with_the_citys_own_labels(cases, strtree):
    assert len(cases) > 100_000
    ward, n_ward = _agreement(strtree["wards"], cases["ward_label"])
    police, n_police = _agreement(strtree["police_districts"], cases["police_district"])
    print(f"\nSTRtree vs City labels: ward {ward:.4%} of {n_ward:,}, police district {police:.4%} of {n_police:,}")
    assert ward >= 0.989
    assert police >= 0.994


def test_sql_locate_matches_strtree_and_the_city_on_a_sample(conn, cases, strtree):
    rng = np.random.default_rng(311)
    sample = rng.choice(len(cases), size=SQL_SAMPLE, replace=False)
    sql_ward, sql_police, differ = [], [], 0
    for i in sample:
        where = locate_point(conn, cases["lat"][i], cases["lon"][i])
        codes = {layer: d["code"] for layer, d in where.districts.items()}
        sql_ward.append(codes.get("wards"))
        sql_police.append(codes.get("police_districts"))
        tree_codes = {layer: strtree[layer][i] for layer in ("wards", "police_districts", "precincts",
                                                             "neighborhoods", "parcel_id")}
        tree_codes["parcel_id"] = strtree["parcel_id"][i]
        ours = {**{k: codes.get(k) for k in tree_codes if k != "parcel_id"}, "parcel_id": where.parcel_id}
        differ += ours != tree_codes or bool(where.inside) != bool(strtree["inside"][i])
    assert differ == 0, f"{differ} of {SQL_SAMPLE} points located differently by SQL and STRtree"
    ward, _ = _agreement(sql_ward, cases["ward_label"].to_numpy()[sample])
    police, _ = _agreement(sql_police, cases["police_district"].to_numpy()[sample])
    print(f"\nSQL locate on {SQL_SAMPLE:,} points vs City labels: ward {ward:.3%}, police {police:.3%}")
    assert ward >= 0.98 and police >= 0.985   # a sample of the 98.96 % / 99.48 % population figures


@pytest.fixture(scope="module")
def shared_layers(engine):
    """The shared boundary files as they are (unrounded), imported as extra layers for this module."""
    from gis import layers
    for name, path, field, crs in SHARED_LAYERS:
        layers.import_layer(engine, SHARED / "boundaries" / path, name, "district", code_field=field,
                            source_crs=crs, progress=False)
    yield [name for name, *_ in SHARED_LAYERS]
    with engine.begin() as c:
        c.execute(text("DELETE FROM layers WHERE name LIKE 'shared\\_%'"))


def _sjoin_codes(cases, path, field, crs):
    """For every case point, the set of codes of the polygons of the file that cover it (geopandas)."""
    import geopandas as gpd
    polygons = gpd.read_file(SHARED / "boundaries" / path)
    if crs:   # the file says EPSG:4326 but holds Massachusetts State Plane feet
        polygons = polygons.set_crs(crs, allow_override=True).to_crs(4326)
    polygons["code"] = polygons[field].map(_code)
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(cases["lon"], cases["lat"]), crs=4326)
    joined = gpd.sjoin(points, polygons[["code", "geometry"]], how="left", predicate="covered_by")
    return joined.groupby(level=0)["code"].agg(lambda s: sorted(s.dropna())).reindex(range(len(cases)))


def test_locate_agrees_with_a_geopandas_sjoin_on_every_point(engine, conn, cases, shared_layers):
    with engine.connect() as c:
        located = LayerIndex(c, with_parcels=False).locate(cases["lon"].to_numpy(), cases["lat"].to_numpy())
    rng = np.random.default_rng(7)
    sample = rng.choice(len(cases), size=300, replace=False)
    by_sql = {i: locate_point(conn, cases["lat"][i], cases["lon"][i]).districts for i in sample}
    for name, path, field, crs in SHARED_LAYERS:
        covering = _sjoin_codes(cases, path, field, crs)
        # The rule for a point on a shared edge (covered by both neighbours): the smallest code.
        expected = [codes[0] if codes else None for codes in covering]
        ours = [_code(v) for v in located[name]]
        wrong = [i for i, (e, o) in enumerate(zip(expected, ours)) if e != o]
        on_edges = sum(len(c) > 1 for c in covering)
        print(f"\n{name}: STRtree = sjoin on {len(cases) - len(wrong):,} of {len(cases):,} points "
              f"({on_edges} on a shared edge)")
        assert not wrong, f"{name}: {len(wrong)} points differ, e.g. " + ", ".join(
            f"({cases['lat'][i]}, {cases['lon'][i]}) sjoin {covering[i]} ours {ours[i]}" for i in wrong[:5])
        sql_wrong = [i for i in sample if _code((by_sql[i].get(name) or {}).get("code")) != expected[i]]
        assert not sql_wrong, f"{name}: SQL locate differs from sjoin on {len(sql_wrong)} sampled points"


def test_a_point_on_a_shared_edge_gets_the_smallest_code_in_both_paths(engine, conn):
    # A vertex the two police districts share lies exactly on both polygons' boundaries.
    row = conn.execute(text("""
        WITH a AS (SELECT (ST_DumpPoints(d.geom)).geom AS g FROM districts d JOIN layers l ON l.id = d.layer_id
                    WHERE l.name = 'police_districts' AND d.code = 'A1'),
             b AS (SELECT d.geom FROM districts d JOIN layers l ON l.id = d.layer_id
                    WHERE l.name = 'police_districts' AND d.code = 'D4')
        SELECT ST_Y(a.g) AS lat, ST_X(a.g) AS lon FROM a, b WHERE ST_Covers(b.geom, a.g) LIMIT 1""")).first()
    assert row is not None, "A1 and D4 share no vertex any more"
    assert locate_point(conn, row.lat, row.lon).districts["police_districts"]["code"] == "A1"
    with engine.connect() as c:
        tree = LayerIndex(c, with_parcels=False).locate([row.lon], [row.lat])
    assert tree["police_districts"][0] == "A1"


def test_inside_alone_is_locates_boundary_test(engine, cases, strtree):
    """LayerIndex.inside (the boundary test of locate() and the bulk import's whole-file one, with no point
    objects or tree) gives locate()'s 'inside' for every case, covers the boundary's own vertices, and
    refuses bad values. (locate()'s 'inside' is checked against the SQL in the test above.)"""
    import shapely
    with engine.connect() as conn:
        index = LayerIndex(conn)
    assert (index.inside(cases["lon"].to_numpy(), cases["lat"].to_numpy()) == strtree["inside"]).all()
    vertices = np.concatenate([shapely.get_coordinates(g)[::25] for g in index.boundary])
    lons = np.concatenate([vertices[:, 0], [np.nan, 200.0, -71.05, -71.05]])
    lats = np.concatenate([vertices[:, 1], [42.3, 42.3, np.inf, 95.0]])
    inside = index.inside(lons, lats)
    assert (inside == index.locate(lons, lats)["inside"]).all()
    assert inside[:len(vertices)].all() and not inside[len(vertices):].any()   # the boundary covers its edge
