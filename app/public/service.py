"""The public site's work: the resident report (on the one intake path) and its photo, lookups.

Everything shown here comes from gis.public (the public view); nothing reads contacts.
"""
import re
from dataclasses import dataclass

from sqlalchemy import text

from gis import geocode, media
from gis.errors import AddressNotFound, AmbiguousAddress, InvalidInput, InvalidLocation
from gis.intake import NewRequest, find_ticket, place, submit_request
from gis.locate import locate_point
from gis.public import address_beside_pin, near, status_card
from gis.services import catalogue, validate_attributes

HONEYPOT = "website"          # a field people never see; bots fill it in
_KEY = re.compile(r"^[A-Za-z0-9-]{16,64}$")   # the form's idempotency key (a uuid4 hex made by the page)


class ChooseAPlace(InvalidLocation):
    """We cannot tell which place the resident means; they pick one of `choices`, dicts of value (sent
    back as the form field `choice`: "pin", or "at:<lat>,<lon>" for a place), label, lat and lon."""
    code = "choose_place"

    def __init__(self, message, choices, **kw):
        super().__init__(message, **kw)
        self.choices = choices


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
    keep_pin: bool = False           # the resident chose the pin over the typed address
    key: str | None = None           # idempotency key: a resubmitted form gets its first ticket back


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
    lat, lon = _float(form.get("lat"), "lat"), _float(form.get("lon"), "lon")
    choice = form.get("choice", "")
    if choice.startswith("at:"):      # a place offered by ChooseAPlace: it becomes the pin
        lat, lon = (_float(v, "choice") for v in (choice[3:].split(",", 1) + [""])[:2])
    key = form.get("idempotency_key", "")
    return Report(service_code=form.get("service_code", "").strip(), lat=lat, lon=lon,
                  address=form.get("address", "").strip() or None,
                  description=form.get("description", "").strip() or None,
                  attributes={k: v for k, v in attributes.items() if v not in ("", [])},
                  contact={k: v for k, v in contact.items() if v}, photo=photo, keep_pin=choice == "pin",
                  key=f"web:{key}" if _KEY.match(key) else None)


def submit_report(conn, report, media_dir, photo_url):
    """Check the answers, settle the place, store the photo (re-encoded, no metadata) and submit on the
    one intake path; the ticket dict ("created" False when the form's key already made a ticket).
    The photo is stored only once the place is known to be in the city, and removed if intake still
    refuses the report, so a refusal leaves no file behind."""
    if not report.service_code:
        raise InvalidInput("choose a category", field="service_code")
    service = catalogue.get(conn, report.service_code, public_only=True)
    validate_attributes(service, report.attributes)   # answers first: they are what a resident fixes
    new = NewRequest(service_code=service.code, description=report.description, attributes=report.attributes,
                     contact=report.contact, notify=bool(report.contact), channel="web", actor="resident:web",
                     idempotency_key=report.key, public_only=True)
    if report.key and find_ticket(conn, idempotency_key=report.key):
        return submit_request(conn, new)     # sent twice (double click, back and send): the first ticket
    new.lat, new.lon, new.address = _where(conn, report)
    if not report.photo or (new.lat is not None and not locate_point(conn, new.lat, new.lon).inside):
        return submit_request(conn, new)        # a pin outside the city: intake words the refusal, no file made
    photo = media.save_photo(report.photo, media_dir)
    new.media_url = photo_url(photo.name)       # the public view drops it for sensitive services
    try:
        ticket = submit_request(conn, new)
    except BaseException:
        media.delete_photo(media_dir, photo.name)   # refused after all: no file without a request
        raise
    if not ticket["created"]:                   # a concurrent send of this form made the ticket, with its photo
        media.delete_photo(media_dir, photo.name)
    return ticket


def _where(conn, report):
    """(lat, lon, address) for NewRequest: the typed address alone, or the pin with the typed words (intake
    keeps words beside a pin as a staff-only note). Refusals come before the photo is stored; a pin far
    from the place the typed address names is a question, not a silent choice."""
    if report.lat is None and report.lon is None:
        if not report.address:
            raise InvalidInput("put a pin on the map or give an address", field="address")
        _placed(conn, report.address, "put a pin on the map")   # refused here in residents' words, or
        return None, None, report.address                        # placed by intake the same way
    if report.lat is None or report.lon is None:
        raise InvalidLocation("the pin needs both lat and lon", field="lat")
    if report.keep_pin or not report.address:
        return report.lat, report.lon, None
    agreeing, elsewhere = address_beside_pin(conn, report.address, report.lat, report.lon)
    if agreeing or not elsewhere:       # the same spot, or words we cannot place ("behind the library")
        return report.lat, report.lon, report.address
    near_pin = geocode.reverse(conn, report.lat, report.lon)
    pin = "The pin on the map" + (f" (near {near_pin['address']})" if near_pin else "")
    far = min(m for _, m in elsewhere)
    raise ChooseAPlace(
        f"The pin on the map and the address you typed, {report.address[:80]!r}, are {_distance(far)} apart. "
        "Which one is where the problem is?",
        [_choice(report.lat, report.lon, pin, "pin")]
        + [_choice(c.lat, c.lon, f"{c.address} ({_distance(m)} from the pin)") for c, m in elsewhere],
        field="address")


def _placed(conn, address, otherwise):
    """(lat, lon, gazetteer address) for a typed address by intake's own rules (score threshold,
    ambiguity gap), its refusals said in residents' words; `otherwise` is what else they can do."""
    try:
        return place(conn, NewRequest(service_code="", address=address))[:3]
    except AmbiguousAddress as exc:
        raise ChooseAPlace(f"There is more than one {address[:80]!r} in the city. Which one do you mean?",
                           [_choice(c["lat"], c["lon"], c["address"]) for c in exc.candidates],
                           field="address") from None
    except AddressNotFound:
        raise AddressNotFound(f"We could not find {address[:80]!r} in the city. Check the spelling and the "
                              f"house number, or {otherwise}.", field="address") from None


def _choice(lat, lon, label, value=None):
    return {"value": value or f"at:{lat:.6f},{lon:.6f}", "label": label, "lat": lat, "lon": lon}


def _distance(metres):
    return f"{metres / 1000:.1f} km" if metres >= 1000 else f"{round(metres, -1):.0f} m"


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
    """(place label, lat, lon, requests) around a point or an address. An address is placed by intake's
    rules (a guess is not found, two close matches are a ChooseAPlace); a point given with an address
    (one of those choices) is labelled by it."""
    address = (address or "").strip()[:300]
    if lat in (None, "") and lon in (None, ""):
        if not address:
            raise InvalidInput("give an address or use your position", field="address")
        lat, lon, label = _placed(conn, address, "use your position")
        found = near(conn, lat, lon, radius)
    else:
        found = near(conn, lat, lon, radius)   # validates lat, lon and radius
        agreeing = address_beside_pin(conn, address, float(lat), float(lon))[0] if address else None
        label = agreeing.address if agreeing else "your position"
    return label, float(lat), float(lon), found


def lookup(conn, number):
    return status_card(conn, (number or "").strip().lstrip("#"))
