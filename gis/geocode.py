"""Geocoding against the address gazetteer (address_points): the names the rest of pin311 calls.

One module a concern, gathered here so callers keep writing `from gis import geocode`:
- gis/geocode_search.py: `geocode`, one free-text address → ranked candidates (exact, interpolated,
  fuzzy street, intersection);
- gis/geocode_batch.py: `geocode_many`, a file of addresses, set-based, one answer per row;
- gis/geocode_reverse.py: `reverse` (a point → nearest address and its parcel) and `address_point` (by id);
- gis/geocode_candidates.py: `Candidate` and the scoring both searches share (locality, ties, places).
PIN311_GEOCODER=arcgis sends forward lookups to the ArcGIS portal instead (gis/geocode_arcgis.py).
"""
from gis.geocode_batch import geocode_many
from gis.geocode_candidates import Candidate
from gis.geocode_reverse import address_point, reverse
from gis.geocode_search import geocode

__all__ = ["Candidate", "address_point", "geocode", "geocode_many", "reverse"]
