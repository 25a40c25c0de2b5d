"""The one intake path: every channel (agent console, Open311, SMS, public form, bulk) calls submit_request.

Validation and placement happen in Python; then ONE SQL statement locates the point, applies the
routing rules, computes the expected date and inserts the request, its first event, its contact and
its outbox rows — all or nothing, one round-trip. A point outside the jurisdiction inserts nothing.
An idempotency key makes a retried submission return the ticket created the first time.
"""
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import text

from gis import geocode, prepared
from gis.errors import (AddressNotFound, AmbiguousAddress, Conflict, InvalidInput, InvalidLocation,
                        OutsideJurisdiction)
from gis.geocode_reverse import AT_SPOT
from gis.locate import LOCATE_CTE, ROUTED_BY, RULE_LATERAL, check_point
from gis.services import catalogue, validate_attributes

DESCRIPTION_MAX = 4000
FIELD_MAX = {"address": 300, "first_name": 100, "last_name": 100, "email": 254, "phone": 32,
             "device_id": 200, "account_id": 200, "media_url": 2000, "idempotency_key": 200,
             "channel": 32, "actor": 200}
CHANNELS = ("agent", "open311", "sms", "voice", "web", "email", "import", "api")
AMBIGUITY_GAP = 0.05    # two places whose scores are this close: ask which one
# Below this a geocoder answer is a guess (on Open311 address strings: 0-40 % of best answers under 0.5
# lie within 60 m of the true spot, 96-98 % of those over 0.7): a request is not placed on a guess
# without a person choosing — "10 Brattle St, Cambridge" must not become "12 Seattle St, Allston".
PLACE_MIN_SCORE = 0.5
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ().-]{7,32}$")


@dataclass
class NewRequest:
    service_code: str
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    address_id: int | None = None
    description: str | None = None
    attributes: dict = field(default_factory=dict)
    media_url: str | None = None
    contact: dict = field(default_factory=dict)   # first_name, last_name, phone, email, device_id, account_id
    notify: bool = True
    channel: str = "api"
    actor: str = "public"
    idempotency_key: str | None = None
    public_only: bool = False                      # residents/Open311 may only use public services


_INSERT = text(f"""
WITH {LOCATE_CTE},
s AS (SELECT code, name, sla_hours, default_crew_id, sensitive FROM services WHERE code = :service AND active),
decision AS (
  SELECT s.code, coalesce(rule.crew_id, s.default_crew_id) AS crew_id, {ROUTED_BY} AS routed_by,
         now() + make_interval(hours => coalesce(s.sla_hours, 0)) AS expected_at, loc.parcel, loc.districts,
         loc.g, loc.inside, s.sensitive
    FROM loc CROSS JOIN s {RULE_LATERAL.format(svc_code="s.code")}
),
ins AS (
  INSERT INTO service_requests (service_code, sensitive, status, description, attributes, geom, address,
                                address_note, address_id, parcel_id, districts, crew_id, routed_by, channel,
                                media_url, expected_at, idempotency_key)
  SELECT d.code, d.sensitive, 'open', :description, CAST(:attributes AS jsonb), d.g, coalesce(:address, (
           -- given only coordinates: the gazetteer address at the spot, if there is one
           SELECT a.address FROM ({AT_SPOT.format(g="d.g")}) a)), :address_note, :address_id,
         d.parcel ->> 'parcel_id', d.districts, d.crew_id, d.routed_by, :channel, :media_url,
         CASE WHEN :has_sla THEN d.expected_at END, :idempotency_key
    FROM decision d WHERE d.inside
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING id, public_id, service_code, status, description, ST_Y(geom) AS lat, ST_X(geom) AS lon, address,
            address_note, parcel_id, districts, routed_by, requested_at, updated_at, expected_at, closed_at, channel,
            duplicate_of, crew_id
),
ev AS (
  INSERT INTO request_events (request_id, kind, status, public_note, actor, data)
  SELECT id, 'created', 'open', 'Request received', :actor, jsonb_build_object('channel', :channel) FROM ins
  RETURNING id, request_id
),
ct AS (
  INSERT INTO contacts (request_id, first_name, last_name, phone, email, device_id, account_id, notify)
  SELECT id, :first_name, :last_name, :phone, :email, :device_id, :account_id, :notify FROM ins WHERE :has_contact
),
ob AS (
  INSERT INTO outbox (topic, payload)
  SELECT 'notify', jsonb_build_object('request_id', ev.request_id, 'event_id', ev.id, 'kind', 'created')
    FROM ev WHERE :has_contact AND :notify
  UNION ALL
  SELECT 'publish', jsonb_build_object('request_id', ev.request_id, 'event_id', ev.id) FROM ev
)
SELECT (SELECT inside FROM loc) AS inside, (SELECT count(*) FROM s) AS service_found, ins.*,
       (SELECT name FROM s) AS service_name, c.code AS crew_code, c.name AS crew_name
  FROM (SELECT 1) one LEFT JOIN ins ON true LEFT JOIN crews c ON c.id = ins.crew_id""")
_INSERT_STMT = prepared.Statement("pin311_intake", _INSERT.text, {
    "lat": "float8", "lon": "float8", "service": "text", "description": "text", "attributes": "text",
    "address": "text", "address_note": "text", "address_id": "int8", "channel": "text", "media_url": "text",
    "idempotency_key": "text",
    "has_sla": "bool", "actor": "text", "has_contact": "bool", "notify": "bool", "first_name": "text",
    "last_name": "text", "phone": "text", "email": "text", "device_id": "text", "account_id": "text"})

# The ticket's fields, in the order find_ticket gives them; the intake statement returns the same.
TICKET_FIELDS = ("id", "public_id", "service_code", "service_name", "status", "description", "lat", "lon",
                 "address", "address_note", "parcel_id", "districts", "routed_by", "requested_at", "updated_at",
                 "expected_at", "closed_at", "channel", "duplicate_of")

_TICKET = text("""
SELECT r.id, r.public_id, r.service_code, sv.name AS service_name, r.status, r.description,
       ST_Y(r.geom) AS lat, ST_X(r.geom) AS lon, r.address, r.address_note, r.parcel_id, r.districts, r.routed_by,
       r.requested_at, r.updated_at, r.expected_at, r.closed_at, r.channel, r.duplicate_of,
       c.code AS crew_code, c.name AS crew_name
  FROM service_requests r JOIN services sv ON sv.code = r.service_code LEFT JOIN crews c ON c.id = r.crew_id
 WHERE {where}""")


def _clip(name, value):
    if value is None:
        return None
    value = _no_nul(name, str(value)).strip()
    if len(value) > FIELD_MAX[name]:
        raise InvalidInput(f"{name} is longer than {FIELD_MAX[name]} characters", field=name)
    return value or None


def _media_url(value):
    """A photo's address: http(s) only ('javascript:…' and 'data:…' were stored and shown as <img src>)."""
    url = _clip("media_url", value)
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise InvalidInput("media_url must be an http or https address", field="media_url")
    return url


def _no_nul(name, value):
    # PostgreSQL text cannot hold NUL; psycopg2 would raise a ValueError (a 500) deep in the insert.
    if "\x00" in value:
        raise InvalidInput(f"{name} contains a NUL character", field=name)
    return value


def _clean_contact(contact):
    clean = {k: _clip(k, (contact or {}).get(k)) for k in
             ("first_name", "last_name", "phone", "email", "device_id", "account_id")}
    if clean["email"] and not _EMAIL.match(clean["email"]):
        raise InvalidInput("email is not an e-mail address", field="email")
    if clean["phone"]:
        number = normalize_phone(clean["phone"]) if _PHONE.match(clean["phone"]) else None
        if number is None:
            raise InvalidInput("phone is not a phone number a text can reach: give the area code "
                               "(e.g. 617 555 0142) or, outside North America, + and the country code",
                               field="phone")
        clean["phone"] = number
    return clean


# What carriers put in From for a withheld number (Twilio's placeholders): no number at all.
WITHHELD = {"+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253"}


def normalize_phone(phone):
    """E.164 ('+16175550142'), or None when it is not a number a text can reach.

    Ten digits are a North American number (+1 added); eleven starting with 1 are one too; any other
    length needs its country code written with '+' (8 to 15 digits, E.164). A seven-digit local number
    is refused: it became '+5550142', which no carrier delivers and no caller lookup finds."""
    raw = str(phone or "").strip()
    digits = re.sub(r"\D", "", raw)
    if len(digits) == 10 and not raw.startswith("+"):
        digits = "1" + digits
    elif not (raw.startswith("+") and 8 <= len(digits) <= 15) and not (len(digits) == 11 and digits[0] == "1"):
        return None
    number = "+" + digits
    return None if number in WITHHELD else number


def place(conn, req):
    """(lat, lon, address, address_id, note) for the request: coordinates, gazetteer id, or geocoded text.

    `address` is always the gazetteer's (None with coordinates: the intake statement takes the address
    at the spot, if one is within 30 m); a text given beside coordinates is the caller's own words about
    the place ("behind the school", "outside Jane Roe's house") and is kept as the staff-only note: it
    is never published as the request's address."""
    if req.lat is not None or req.lon is not None:
        if req.lat is None or req.lon is None:
            raise InvalidLocation("give both lat and long", field="lat")
        lat, lon = check_point(req.lat, req.lon)
        return lat, lon, None, req.address_id, _clip("address", req.address)
    if req.address_id not in (None, ""):
        found = geocode.address_point(conn, req.address_id)
        if not found:
            raise InvalidLocation(f"no address with address_id {str(req.address_id)[:32]!r}", field="address_id")
        return found.lat, found.lon, found.address, found.address_id, None
    if req.address:
        query = _clip("address", req.address)
        found = geocode.geocode(conn, query, limit=5)
        cands = [c for c in found if c.score >= PLACE_MIN_SCORE]
        if not cands:
            guess = f" (the closest, {found[0].address}, is too unlike it)" if found else ""
            raise AddressNotFound(f"could not find the address {query!r} in the city{guess}; check it, "
                                  "drop a pin or give lat/long", field="address_string")
        best = cands[0]
        rivals = [c for c in cands[1:] if best.score - c.score <= AMBIGUITY_GAP]
        if rivals:
            places = "; ".join(c.address for c in [best, *rivals])
            raise AmbiguousAddress(f"{query!r} matches {len(rivals) + 1} places ({places}); choose one",
                                   [c.as_dict() for c in [best, *rivals]], field="address_string")
        return best.lat, best.lon, best.address, best.address_id, None
    raise InvalidLocation("a location is required: lat and long, address_string or address_id", field="lat")


def submit_request(conn, req):
    """Validate, place, locate, route and store a request in one transaction; returns the ticket dict.

    Commits on success. Raises a Pin311Error subclass (nothing written) on bad input, a point outside
    the jurisdiction or an unknown service.
    """
    service = catalogue.get(conn, req.service_code, public_only=req.public_only)
    attributes = validate_attributes(service, req.attributes)
    if "\\u0000" in json.dumps(attributes):   # jsonb refuses \u0000 as well
        raise InvalidInput("an attribute value contains a NUL character", field="attributes")
    description = _no_nul("description", str(req.description or "")).strip() or None
    if description and len(description) > DESCRIPTION_MAX:
        raise InvalidInput(f"description is longer than {DESCRIPTION_MAX} characters", field="description")
    channel = req.channel if req.channel in CHANNELS else "api"
    key = _clip("idempotency_key", req.idempotency_key)
    actor = _clip("actor", req.actor) or "public"
    if key:
        existing = find_ticket(conn, idempotency_key=key)
        if existing:
            return _repeat(conn, existing, actor)
    lat, lon, address, address_id, address_note = place(conn, req)
    contact = _clean_contact(req.contact)
    has_contact = any(contact.values())
    params = {
        "lat": lat, "lon": lon, "service": service.code, "description": description,
        "attributes": json.dumps(attributes), "address": address, "address_note": address_note,
        "address_id": address_id,
        "channel": channel, "media_url": _media_url(req.media_url), "idempotency_key": key,
        "has_sla": service.sla_hours is not None, "actor": actor,
        "has_contact": has_contact, "notify": bool(req.notify), **contact,
    }
    try:
        row = _INSERT_STMT.run(conn, params).one()
        if not row.inside:
            conn.rollback()
            if _inside_if_swapped(conn, lat, lon):
                raise InvalidLocation(f"({lat}, {lon}) is outside the city but ({lon}, {lat}) is inside: "
                                      "are lat and long swapped?", field="lat")
            raise OutsideJurisdiction(f"the location ({lat:.5f}, {lon:.5f}) is outside the city; "
                                      "this 311 service only takes requests inside its boundary", field="lat")
        if row.id is None:  # same idempotency key committed by a concurrent submission
            conn.rollback()
            return _repeat(conn, find_ticket(conn, idempotency_key=key), actor)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return {**_ticket(row), "created": True}   # from the statement itself: no second round-trip


def _repeat(conn, ticket, actor):
    """The ticket a repeated submission gets back — only if the same client made it: another client's
    key that happens to be equal (two apps both counting tokens from 1) must not be answered with, and
    silently lose its report to, somebody else's ticket."""
    first = conn.scalar(text("SELECT actor FROM request_events WHERE request_id = :r AND kind = 'created' "
                             "ORDER BY id LIMIT 1"), {"r": ticket["id"]})
    conn.rollback()
    if first is not None and first != actor:
        raise Conflict("this idempotency key (Open311 token) was already used by another client for another "
                       "request; send this one with a key of its own", field="idempotency_key")
    return {**ticket, "created": False}


def _inside_if_swapped(conn, lat, lon):
    from gis.locate import locate_point
    return abs(lon) <= 90 and locate_point(conn, lon, lat).inside


def find_ticket(conn, request_id=None, public_id=None, idempotency_key=None):
    """The staff view of one request (no contact data), or None."""
    if request_id is not None:
        where, value = "r.id = :v", request_id
    elif public_id is not None:
        where, value = "r.public_id = :v", str(public_id)[:64]
    else:
        where, value = "r.idempotency_key = :v", idempotency_key
    row = conn.execute(text(_TICKET.text.format(where=where)), {"v": value}).first()
    return _ticket(row) if row is not None else None


def _ticket(row):
    ticket = {name: getattr(row, name) for name in TICKET_FIELDS}
    ticket["crew"] = {"code": row.crew_code, "name": row.crew_name} if row.crew_code else None
    return ticket
