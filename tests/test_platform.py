"""Platform: migrations up and down, layer import (good and bad files), the CLI contract, config errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from app import schema
from app.config import ConfigError, database_url
from gis import layers
from gis.errors import LayerImportError
from tests.conftest import ROOT, SHARED, needs_shared

PIN311 = str(Path(sys.executable).parent / "pin311")


@pytest.fixture(autouse=True)
def _drop_layers_made_here(engine):
    """Layers these tests import would otherwise show up in every later locate."""
    yield
    with engine.begin() as c:
        c.execute(text("DELETE FROM layers WHERE name LIKE 'test\\_%' OR name = 'census_tracts'"))


@pytest.fixture
def scratch_db(db_url):
    """An empty database of its own (the shared test database already has everything)."""
    name = f"pin311_scratch_{os.getpid()}"
    admin = make_url(db_url).set(database="postgres")
    eng = create_engine(admin, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(db_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


def _tables(url):
    eng = create_engine(url, poolclass=pool.NullPool)
    with eng.connect() as c:
        names = set(c.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")))
    eng.dispose()
    return names - {"spatial_ref_sys", "alembic_version"}


def test_migrations_go_up_and_down_on_an_empty_database(scratch_db):
    schema.upgrade(scratch_db)
    up = _tables(scratch_db)
    assert {"layers", "districts", "parcels", "address_points", "services", "crews", "routing_rules",
            "service_requests", "request_events", "contacts", "outbox", "users", "api_keys"} <= up
    schema.downgrade(scratch_db, "base")
    assert _tables(scratch_db) == set()
    schema.upgrade(scratch_db)   # and up again: downgrade left nothing behind that blocks it
    assert _tables(scratch_db) == up


def _count(engine, name):
    with engine.connect() as c:
        return c.scalar(text("SELECT feature_count FROM layers WHERE name = :n"), {"n": name})


def _write(tmp_path, name, features, crs="EPSG:4326"):
    gdf = gpd.GeoDataFrame(features, geometry="geometry", crs=crs)
    path = tmp_path / name
    gdf.to_file(path)
    return path


def test_import_repairs_broken_geometry_and_replaces_the_layer(engine, tmp_path):
    bowtie = shapely.Polygon([(-71.06, 42.35), (-71.05, 42.36), (-71.05, 42.35), (-71.06, 42.36)])
    square = shapely.box(-71.07, 42.34, -71.065, 42.345)
    path = _write(tmp_path, "zones.geojson", {"code": ["A", "B", None], "name": ["Bow", "Sq", "x"],
                                              "geometry": [bowtie, square, square]})
    report = layers.import_layer(engine, path, "test_zones", "district", "code", "name", progress=False)
    assert report.loaded == 2
    assert report.skipped == {"no value in code field 'code'": 1}
    with engine.connect() as c:
        valid = c.scalar(text("SELECT bool_and(ST_IsValid(d.geom)) FROM districts d JOIN layers l "
                              "ON l.id = d.layer_id WHERE l.name = 'test_zones'"))
        assert valid
    again = _write(tmp_path, "zones2.geojson", {"code": ["C"], "geometry": [square]})
    layers.import_layer(engine, again, "test_zones", "district", progress=False)
    assert _count(engine, "test_zones") == 1


@pytest.mark.parametrize("case, message", [
    ("missing_field", "field 'nope' not found"),
    ("empty", "no features"),
    ("not_gis", "cannot read"),
    ("no_crs", "does not say its coordinate reference system"),
    ("bad_crs", "unknown source CRS"),
    ("feet_as_degrees", "are not degrees"),
])
def test_bad_layer_files_give_a_clear_message_and_change_nothing(engine, tmp_path, case, message):
    square = shapely.box(-71.07, 42.34, -71.065, 42.345)
    layers.import_layer(engine, _write(tmp_path, "ok.geojson", {"code": ["K"], "geometry": [square]}),
                        "test_keep", "district", progress=False)
    kwargs = {"code_field": "code"}
    if case == "missing_field":
        path, kwargs = _write(tmp_path, "f.geojson", {"code": ["X"], "geometry": [square]}), {"code_field": "nope"}
    elif case == "empty":
        path = tmp_path / "empty.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    elif case == "not_gis":
        path = tmp_path / "notes.txt"
        path.write_text("this is not a map\n")
    elif case == "no_crs":
        path = _write(tmp_path, "nocrs.gpkg", {"code": ["X"], "geometry": [square]}, crs=None)
    elif case == "bad_crs":
        path = _write(tmp_path, "f.geojson", {"code": ["X"], "geometry": [square]})
        kwargs["source_crs"] = "EPSG:999999"
    else:
        path = _write(tmp_path, "feet.geojson", {"code": ["X"], "geometry": [shapely.box(760000, 2950000,
                                                                                         761000, 2951000)]})
    with pytest.raises(LayerImportError, match=message):
        layers.import_layer(engine, path, "test_keep", "district", progress=False, **kwargs)
    assert _count(engine, "test_keep") == 1


def test_a_failure_mid_import_leaves_the_old_layer_whole(engine, tmp_path, monkeypatch):
    boxes = [shapely.box(-71.07 + i * 1e-4, 42.34, -71.0699 + i * 1e-4, 42.3401) for i in range(12)]
    path = _write(tmp_path, "many.geojson", {"code": [str(i) for i in range(12)], "geometry": boxes})
    layers.import_layer(engine, path, "test_atomic", "district", progress=False)

    def broken(cursor, table, buffer):
        raise RuntimeError("disk full")
    monkeypatch.setattr(layers, "CHUNK", 5)
    monkeypatch.setattr(layers, "_flush", broken)
    with pytest.raises(RuntimeError):
        layers.import_layer(engine, _write(tmp_path, "two.geojson", {"code": ["a"], "geometry": boxes[:1]}),
                            "test_atomic", "district", progress=False)
    with engine.connect() as c:
        n = c.scalar(text("SELECT count(*) FROM districts d JOIN layers l ON l.id = d.layer_id "
                          "WHERE l.name = 'test_atomic'"))
    assert n == 12 and _count(engine, "test_atomic") == 12


def _cli(*args, env=None):
    return subprocess.run([PIN311, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=ROOT, timeout=300)


@needs_shared()
def test_cli_imports_census_tracts_from_a_zipped_shapefile(db_url):
    zipped = SHARED / "boundaries" / "census_tracts_2010.zip"
    result = _cli("layers", "import", f"/vsizip/{zipped}/Census_2010_Tracts/Census_2010_Tracts.shp",
                  "--layer", "census_tracts", "--kind", "district", "--code-field", "GEOID10",
                  "--name-field", "NAMELSAD10")
    assert result.returncode == 0, result.stderr
    assert "loaded 181 features" in result.stdout
    listing = _cli("layers", "list")
    assert "census_tracts" in listing.stdout and "181" in listing.stdout
    for layer in ("city_boundary", "wards", "precincts", "neighborhoods", "police_districts", "parcels",
                  "addresses"):
        assert layer in listing.stdout


def test_cli_errors_are_one_clear_line(db_url, tmp_path):
    bogus = tmp_path / "x.txt"
    bogus.write_text("hello")
    result = _cli("layers", "import", str(bogus), "--layer", "x", "--kind", "district")
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot read") and "Traceback" not in result.stderr
    result = _cli("db", "url")
    assert result.stdout.strip() == db_url


def test_db_commands_say_so_when_database_url_points_elsewhere(db_url):
    for command in ("start", "stop", "status"):
        result = _cli("db", command)
        assert result.returncode == 0 and "managed elsewhere" in result.stdout


def test_bad_configuration_is_reported_clearly(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://root@localhost/x")
    with pytest.raises(ConfigError, match="PostgreSQL"):
        database_url()
    monkeypatch.setenv("DATABASE_URL", "::not a url::")
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        database_url()
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("PIN311_STATEMENT_TIMEOUT_MS", "soon")
    from app import create_app
    with pytest.raises(ConfigError, match="PIN311_STATEMENT_TIMEOUT_MS"):
        create_app()
    monkeypatch.delenv("PIN311_STATEMENT_TIMEOUT_MS")
    monkeypatch.setenv("PIN311_TIMEZONE", "Boston/Harbour")
    with pytest.raises(ConfigError, match="PIN311_TIMEZONE"):
        create_app()
    monkeypatch.delenv("PIN311_TIMEZONE")
    monkeypatch.setenv("PIN311_OPEN311_POST_LIMIT", "lots")
    with pytest.raises(ConfigError, match="PIN311_OPEN311_POST_LIMIT"):
        create_app()
    monkeypatch.delenv("PIN311_OPEN311_POST_LIMIT")
    for site in ("311.example.gov", "https://311.example.gov/path", "javascript:alert(1)"):
        monkeypatch.setenv("PIN311_PUBLIC_URL", site)
        with pytest.raises(ConfigError, match="PIN311_PUBLIC_URL"):
            create_app()
    result = subprocess.run([PIN311, "db", "url"], capture_output=True, text=True,
                            env={**os.environ, "DATABASE_URL": "mysql://x@y/z"})
    assert result.returncode == 1 and "PostgreSQL" in result.stderr


def test_the_local_cluster_preloads_postgis(engine):
    from app import localdb
    if engine.url.query.get("host") != str(localdb.socket_dir()):
        pytest.skip("the tests run on another server (DATABASE_URL): its settings are its operator's")
    with engine.connect() as c:
        assert localdb.POSTGIS_LIBRARY in c.exec_driver_sql("SHOW shared_preload_libraries").scalar()


def test_healthz_checks_the_database(client):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["schema"]


def test_upgrade_without_the_right_to_create_postgis_says_what_to_run(scratch_db):
    admin = create_engine(scratch_db, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text("DROP ROLE IF EXISTS pin311_limited"))
        c.execute(text("CREATE ROLE pin311_limited LOGIN NOSUPERUSER"))
        c.execute(text(f'ALTER DATABASE "{make_url(scratch_db).database}" OWNER TO pin311_limited'))
    limited = make_url(scratch_db).set(username="pin311_limited").render_as_string(hide_password=False)
    try:
        result = subprocess.run([PIN311, "db", "upgrade"], capture_output=True, text=True,
                                env={**os.environ, "DATABASE_URL": limited}, timeout=120)
        assert result.returncode == 1
        assert "CREATE EXTENSION postgis;" in result.stderr and "superuser" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        with admin.connect() as c:
            c.execute(text(f'ALTER DATABASE "{make_url(scratch_db).database}" OWNER TO postgres'))
            c.execute(text("DROP ROLE IF EXISTS pin311_limited"))
        admin.dispose()


@pytest.mark.parametrize("own_cluster", [True, False])
def test_demo_accounts_file_is_only_for_the_checkouts_own_database(monkeypatch, tmp_path, own_cluster):
    """`pin311 demo load` against another database (DATABASE_URL) printed its passwords into the checkout's
    var/demo-accounts.txt, replacing the ones of the checkout's own database."""
    from click.testing import CliRunner

    from app import localdb
    from app.cli import demo as demo_cli
    monkeypatch.setattr(demo_cli.demo, "load", lambda engine, with_requests: iter(["loaded"]))
    monkeypatch.setattr(demo_cli.demo, "create_staff", lambda engine, create: [("demo-agent", "agent", "pw-123")])
    monkeypatch.setattr(localdb, "ROOT", tmp_path)
    monkeypatch.setattr(demo_cli, "uses_local_cluster", lambda: own_cluster)
    monkeypatch.setattr(demo_cli, "engine_for", lambda url: None)
    monkeypatch.setattr(demo_cli, "database_url", lambda: "postgresql://elsewhere/db")
    out = CliRunner().invoke(demo_cli.group, ["load"])
    assert out.exit_code == 0, out.output
    assert "pw-123" in out.output
    notes = tmp_path / "var" / "demo-accounts.txt"
    assert notes.exists() is own_cluster
    if own_cluster:
        assert notes.read_text() == "demo-agent\tagent\tpw-123\n" and notes.stat().st_mode & 0o077 == 0
