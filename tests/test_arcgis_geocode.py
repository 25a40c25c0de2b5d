"""PIN311_GEOCODER=arcgis: geocode() and intake use the portal's geocode service (arcgis.geocoding)."""
import pytest
from sqlalchemy import text

from gis import geocode
from gis.arcgis_connect import PortalUnavailable
from gis.geocode import Candidate
from gis.intake import NewRequest, submit_request
from tests.arcgis_fixtures import arcgis_env, portal  # noqa: F401

STREET = text("""SELECT address, city, zip, ST_X(geom) AS x, ST_Y(geom) AS y FROM address_points
                  WHERE street = (SELECT street FROM address_points WHERE address LIKE '615 E Fourth St%' LIMIT 1)""")


@pytest.fixture
def arcgis_geocoder(conn, portal, arcgis_env):
    """The stand-in geocode service knows the whole street of 615 E Fourth St, from the gazetteer."""
    portal.gazetteer = [{"address": f"{r.address}, {r.city}, MA, {r.zip}", "x": r.x, "y": r.y, "city": r.city,
                         "zip": r.zip, "type": "PointAddress"} for r in conn.execute(STREET)]
    assert len(portal.gazetteer) > 20
    arcgis_env.setenv("PIN311_GEOCODER", "arcgis")
    return portal


def test_geocode_answers_candidates_from_the_arcgis_geocoder(conn, arcgis_geocoder):
    best, *rest = geocode.geocode(conn, "615 E Fourth St", limit=5)
    want = next(g for g in arcgis_geocoder.gazetteer if g["address"].startswith("615 E Fourth St,"))
    assert isinstance(best, Candidate) and best.match == "exact" and best.score == 1.0
    assert (best.lon, best.lat) == (want["x"], want["y"]) and best.zip == want["zip"]
    assert all(c.score <= best.score for c in rest)
    assert ("POST", "/geocode/rest/services/World/GeocodeServer/findAddressCandidates") in arcgis_geocoder.calls \
        or ("GET", "/geocode/rest/services/World/GeocodeServer/findAddressCandidates") in arcgis_geocoder.calls
    assert geocode.geocode(conn, "1 Nowhere Lane") == []


def test_intake_places_an_address_with_the_arcgis_geocoder(conn, arcgis_geocoder):
    ticket = submit_request(conn, NewRequest(service_code="dead-animal", address="615 E Fourth St",
                                             attributes={"animal_size": "small"}))
    want = next(g for g in arcgis_geocoder.gazetteer if g["address"].startswith("615 E Fourth St,"))
    assert abs(ticket["lat"] - want["y"]) < 1e-9 and abs(ticket["lon"] - want["x"]) < 1e-9


def test_a_failing_geocode_service_is_a_typed_error(conn, arcgis_geocoder):
    arcgis_geocoder.down = "500"
    with pytest.raises(PortalUnavailable) as err:
        geocode.geocode(conn, "615 E Fourth St")
    assert err.value.status == 503
    arcgis_geocoder.down = None
