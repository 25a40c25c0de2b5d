"""Fixtures for the ArcGIS tests: a stand-in portal, the environment pointing at it, a published city.

Import the fixtures by name into a test module (`from tests.arcgis_fixtures import portal, ...`).
"""
import pytest
from sqlalchemy import text

from tests import standin_portal
from tests.standin_portal import API_KEY


@pytest.fixture
def portal():
    p = standin_portal.start()
    yield p
    p.stop()


@pytest.fixture
def arcgis_env(portal, monkeypatch):
    """PIN311_ARCGIS_* set for an API key on the stand-in portal (and nothing else)."""
    for name in ("API_KEY", "CLIENT_ID", "CLIENT_SECRET", "USERNAME", "PASSWORD", "BATCH"):
        monkeypatch.delenv("PIN311_ARCGIS_" + name, raising=False)
    monkeypatch.setenv("PIN311_ARCGIS_URL", portal.url)
    monkeypatch.setenv("PIN311_ARCGIS_VERIFY_CERT", "false")
    monkeypatch.setenv("PIN311_ARCGIS_API_KEY", API_KEY)
    from gis import arcgis_sync
    arcgis_sync.forget_session()
    yield monkeypatch
    arcgis_sync.forget_session()


@pytest.fixture
def published(engine, portal, arcgis_env):
    """The demo city published to the stand-in portal; pending publish rows before it are moot."""
    from gis import arcgis_connect, arcgis_publish
    with engine.begin() as c:
        c.execute(text("UPDATE outbox SET done_at = now() WHERE topic = 'publish' AND done_at IS NULL"))
        c.execute(text("DELETE FROM arcgis_items"))
    summary = arcgis_publish.publish(engine, arcgis_connect.connect(), portal.url)
    yield summary
    with engine.begin() as c:
        c.execute(text("DELETE FROM arcgis_items"))


def hosted_requests(portal):
    """{public_id: feature} of the hosted requests layer, and how many features it holds in all."""
    service = next(name for name in portal.services if name.endswith("_requests"))
    rows = portal.layer(service).rows()
    return {f["attributes"]["public_id"]: f for f in rows}, len(rows)


PUBLIC_NOW = text("""
SELECT public_id, status, service_code, closed_at, round(ST_X(geom)::numeric, 7) AS x,
       round(ST_Y(geom)::numeric, 7) AS y FROM public_requests""")


def assert_layer_is_public_view(conn, portal):
    """The hosted layer holds exactly the public view: same keys, once each, same status and place."""
    held, count = hosted_requests(portal)
    assert count == len(held), "duplicate public_id features on the hosted layer"
    rows = conn.execute(PUBLIC_NOW).all()
    want = {r.public_id: r for r in rows}
    assert set(held) == set(want), (f"missing {sorted(set(want) - set(held))[:5]}, "
                                    f"extra {sorted(set(held) - set(want))[:5]}")
    wrong = [pid for pid, r in want.items()
             if held[pid]["attributes"]["status"] != r.status
             or held[pid]["attributes"]["service_code"] != r.service_code
             or abs(held[pid]["geometry"]["x"] - float(r.x)) > 1e-6
             or abs(held[pid]["geometry"]["y"] - float(r.y)) > 1e-6
             or (held[pid]["attributes"]["closed_at"] is None) != (r.closed_at is None)]
    assert not wrong, f"{len(wrong)} features differ from the database, e.g. {wrong[:3]}"
