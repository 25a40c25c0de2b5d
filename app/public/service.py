"""The public site's work: the resident report (on the one intake path) and its photo, lookups.

Everything shown here comes from gis.public (the public view); nothing reads contacts.
"""
from dataclasses import dataclass

from sqlalchemy import text

from gis import geocode, media
from gis.errors import InvalidInput
from gis.intake import NewRequest, submit_request
from gis.public import near, status_card
from gis.services import catalogue

HONEYPOT = "website"          # a field people never see; bots fill it in


@dataclass
class Report:
    service_code: str
    lat: float | None
    lon: float | None
    address: str | None
    description: str | None
    attributes: dict
    contact: dict
    photo: bytes | None


def _float(raw, name):
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number", field=name) from None
    if value != value or abs(value) > 180:
        raise InvalidInput(f"{name} is out of range", field=name)
    return value


def report_from_form(form, photo):
    """A Report from the form fields (attribute answers come as attribute[code])."""
    if form.get(HONEYPOT):
        raise InvalidInput("the form could not be accepted", field=HONEYPOT)
    attributes = {}
    for key in form:
        if key.startswith("attribute[") and key.endswith("]"):
            values = [v for v in form.getlist(key) if v != ""]
            attributes[key[10:-1]] = values if len(values) > 1 else (values[0] if values else "")
    contact = {k: form.get(k, "").strip() for k in ("first_name", "last_name", "email", "phone")}
    return Report(service_code=form.get("service_code", "").strip(), lat=_float(form.get("lat"), "lat"),
                  lon=_float(form.get("lon"), "lon"), address=form.get("address", "").strip() or None,
                  description=form.get("description", "").strip() or None,
                  attributes={k: v for k, v in attributes.items() if v not in ("", [])},
                  contact={k: v for k, v in contact.items() if v}, photo=photo)


def submit_report(conn, report, media_dir, photo_url):
    """Store the photo (re-encoded, no metadata) and submit on the one intake path; the ticket dict."""
    if not report.service_code:
        raise InvalidInput("choose a category", field="service_code")
    service = catalogue.get(conn, report.service_code, public_only=True)
    media_url = None
    if report.photo:
        photo = media.save_photo(report.photo, media_dir)
        media_url = photo_url(photo.name)   # the public view drops it for sensitive services
    if report.lat is None and not report.address:
        raise InvalidInput("put a pin on the map or give an address", field="address")
    return submit_request(conn, NewRequest(
        service_code=service.code, lat=report.lat, lon=report.lon,
        address=None if report.lat is not None else report.address, description=report.description,
        attributes=report.attributes, media_url=media_url, contact=report.contact, notify=bool(report.contact),
        channel="web", actor="resident:web", public_only=True))


def photo_is_public(conn, name):
    """A resident's photo is shown only when a public request carries it (never for sensitive ones)."""
    if not media.NAME.match(name or ""):
        return False
    hit = conn.execute(text("SELECT 1 FROM public_requests WHERE media_url LIKE :p LIMIT 1"),
                       {"p": f"%/photos/{name}.jpg"}).first()
    return hit is not None or media.public_photo_allowed(conn, name)


def services_by_group(conn):
    groups = {}
    for svc in catalogue.all(conn).values():
        if svc.public:
            groups.setdefault(svc.group or "Other", []).append(svc)
    return groups


def near_place(conn, lat=None, lon=None, address=None, radius=400):
    """(place label, requests) around a point or an address."""
    if address:
        cands = geocode.geocode(conn, address.strip()[:300], limit=1)
        if not cands:
            raise InvalidInput(f"could not find the address {address.strip()[:80]!r}", field="address")
        lat, lon, label = cands[0].lat, cands[0].lon, cands[0].address
    else:
        label = "your position"
    found = near(conn, lat, lon, radius)   # validates lat, lon and radius
    return label, float(lat), float(lon), found


def lookup(conn, number):
    return status_card(conn, (number or "").strip().lstrip("#"))
