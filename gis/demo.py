"""The demo city shipped in data/: which file becomes which layer, and loading it all."""
from pathlib import Path

from sqlalchemy import text

from gis import catalogue, layers

DATA = Path(__file__).resolve().parent.parent / "data"
# (file, layer name, kind, code field, name field)
LAYERS = (
    ("city_boundary.geojson", "city_boundary", "boundary", "code", "name"),
    ("wards.geojson", "wards", "district", "code", "name"),
    ("precincts.geojson", "precincts", "district", "code", "name"),
    ("neighborhoods.geojson", "neighborhoods", "district", "code", "name"),
    ("police_districts.geojson", "police_districts", "district", "code", "name"),
    ("parcels.geojson.gz", "parcels", "parcel", "parcel_id", None),
    ("addresses.csv.gz", "addresses", "address", "address", None),
)
DEMO_REQUESTS = "demo_requests.csv.gz"


def is_loaded(engine):
    with engine.connect() as conn:
        return bool(conn.scalar(text("SELECT count(*) FROM layers WHERE name = 'city_boundary'"))) and \
            bool(conn.scalar(text("SELECT count(*) FROM services")))


def load(engine, data_dir=DATA, with_requests=True, progress=True):
    """Load everything; yields a line per step."""
    data_dir = Path(data_dir)
    for filename, name, kind, code_field, name_field in LAYERS:
        report = layers.import_layer(engine, data_dir / filename, name, kind, code_field, name_field,
                                     progress=progress)
        yield report.summary()
    with engine.begin() as conn:
        yield catalogue.load_all(conn, data_dir)
    if with_requests and (data_dir / DEMO_REQUESTS).exists():
        from gis import bulk
        report = bulk.import_requests(engine, data_dir / DEMO_REQUESTS, "boston-csv", progress=progress)
        yield report.summary()


DEMO_STAFF = (("demo-agent", "agent", ()), ("demo-supervisor", "supervisor", ()),
              ("demo-crew", "crew", ("animal-control-c6",)), ("demo-analyst", "analyst", ()),
              ("demo-admin", "admin", ()))


def create_staff(engine, create_user):
    """Demo accounts, one per role, each with a fresh random password; returns [(user, role, password)].

    `create_user` is app.auth.users.create (passed in: gis/ knows nothing of the web layer).
    """
    import secrets
    made = []
    with engine.begin() as conn:
        for username, role, crews in DEMO_STAFF:
            password = secrets.token_urlsafe(9)
            create_user(conn, username, password, role, f"Demo {role.title()}", crews)
            made.append((username, role, password))
    return made
