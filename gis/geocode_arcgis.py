"""The optional ArcGIS geocoder (PIN311_GEOCODER=arcgis): the portal's geocode service via arcgis.geocoding.

Answers with the same Candidate type as the local gazetteer geocoder (gis/geocode.py); scores are
the service's 0…100 scaled to 0…1, and its Addr_type says how the point was found. Signs in like
the publisher (PIN311_ARCGIS_*, gis/arcgis_connect.py); a portal that fails is PortalUnavailable.
"""
from gis import arcgis_connect
from gis.arcgis_connect import PortalUnavailable
from gis.geocode import Candidate

MIN_SCORE = 60           # below this the World geocoder's candidates are mostly other places
MATCH = {"PointAddress": "exact", "Subaddress": "exact", "StreetAddress": "interpolated",
         "StreetAddressExt": "interpolated", "StreetInt": "intersection"}
OUT_FIELDS = "Match_addr,Addr_type,City,Postal,Score"


def _geocoder(gis):
    from arcgis.geocoding import get_geocoders
    found = get_geocoders(gis)
    if not found:
        raise PortalUnavailable("the ArcGIS portal lists no geocode service (helperServices.geocode)")
    return found[0]


def geocode(query, limit=5):
    """Ranked candidates for a free-text address from the ArcGIS geocoder (best first)."""
    from arcgis.geocoding import geocode as find
    try:
        gis = arcgis_connect.session()
        results = find(query, max_locations=limit, out_fields=OUT_FIELDS, out_sr=4326,
                       geocoder=_geocoder(gis))
    except (arcgis_connect.ArcGISAuthError, arcgis_connect.ArcGISConfigError, PortalUnavailable):
        raise
    except Exception as exc:    # the package raises bare Exceptions for portal errors
        arcgis_connect.forget_session()
        first = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise PortalUnavailable(f"the ArcGIS geocoder failed: {first}") from None
    cands = []
    for r in results or []:
        attrs = r.get("attributes", {})
        if r.get("score", 0) < MIN_SCORE:
            continue
        cands.append(Candidate(address=r.get("address") or attrs.get("Match_addr"), lat=r["location"]["y"],
                               lon=r["location"]["x"], match=MATCH.get(attrs.get("Addr_type"), "fuzzy"),
                               score=round(r["score"] / 100, 3), city=attrs.get("City") or None,
                               zip=attrs.get("Postal") or None))
    return sorted(cands, key=lambda c: -c.score)[:limit]
