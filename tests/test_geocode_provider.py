"""`pin311 geocode` / geocode_many with PIN311_GEOCODER=arcgis: the chosen provider answers every row."""
from gis import geocode
from tests.arcgis_fixtures import arcgis_env, portal  # noqa: F401


def test_batch_geocoding_asks_the_arcgis_provider_when_it_is_chosen(conn, portal, arcgis_env):
    # A point the local gazetteer does not have for this address: only the provider can answer it.
    portal.gazetteer = [{"address": "615 E Fourth St, South Boston, MA, 02127", "x": -71.0401, "y": 42.3351,
                         "city": "South Boston", "zip": "02127", "type": "PointAddress"}]
    arcgis_env.setenv("PIN311_GEOCODER", "arcgis")
    got = geocode.geocode_many(conn, ["615 E Fourth St", "", "615 E Fourth St"])
    assert got[1] is None
    assert (got[0].lat, got[0].lon) == (42.3351, -71.0401) and got[2] is got[0]
    arcgis_env.delenv("PIN311_GEOCODER")
    local = geocode.geocode_many(conn, ["615 E Fourth St"])[0]
    assert (local.lat, local.lon) == (42.3345, -71.0398)
