"""The field crew's core: open tickets near a position (KNN), who may act on what (the day's route:
gis/crew_route.py).

"Near me" is a KNN query (`<->`) on the partial GiST index of open requests
(`service_requests_open_geom_gist`, WHERE status <> 'closed'). That operator orders geometry(4326)
by *degrees*, which is not the order of metres (a degree of longitude is ~74 km here, a degree of
latitude ~111 km). So the index hands us a generous candidate set, and we sort the candidates by
their geodesic distance (geography, WGS84 spheroid). A lower bound proves the answer exact: every
point outside the candidate set is at least D degrees away (D = the farthest candidate), hence at
least `metres_per_degree_lower_bound * D` metres; when the k-th nearest candidate is closer than
that, no outsider can beat it. When the bound does not hold, a second index query fetches every
open ticket inside the box that bound requires, so the result always equals a brute-force sort.
"""
import math
from datetime import datetime, timezone

from pyproj import Geod
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from gis.errors import Conflict, Forbidden, InvalidInput, NotFound
from gis.locate import check_point

GEOD = Geod(ellps="WGS84")
NEAR_LIMIT_MAX = 200
DUE_SOON_HOURS = 24
# Metres per degree of latitude is at least 110,574 (at the equator); a degree of longitude spans
# 111,319·cos(lat) ≥ 110,574·cos(lat). 1 % slack covers the geodesic bulging poleward.
_M_PER_DEG_LOW = 110_574 * 0.99
SUPER_ROLES = ("supervisor", "admin")

_FILTERS = """
   AND (:all_crews OR r.crew_id = ANY(:crew_ids))
   AND (CAST(:service AS text) IS NULL OR r.service_code = :service)
   AND (NOT :overdue OR r.expected_at < now())"""

# With a selective filter (one crew's tickets) the planner's estimate falls under the LIMIT and it
# prefers reading every matching open ticket and sorting them (the crew/status b-tree or a bitmap of
# the whole partial index): ~25 ms at 5 million tickets instead of well under one. For this one
# statement, sorts and bitmap scans are made unattractive, so only the ordered KNN index scan is left.
_KNN_ONLY = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off;"
_RESTORE = text("SET LOCAL enable_sort TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT")

# Stage 1: KNN on the partial index (degree order), a candidate set larger than what we return.
KNN_SELECT = f"""
SELECT r.id, ST_Distance(r.geom, pt.g) AS deg,
       ST_Distance(r.geom::geography, pt.g::geography) AS metres
  FROM service_requests r, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) pt
 WHERE r.status <> 'closed' {_FILTERS}
 ORDER BY r.geom <-> pt.g
 LIMIT :cand"""
_KNN = text(_KNN_ONLY + KNN_SELECT)

# Stage 2 (rare): every open ticket in the box the lower bound requires, by metres.
_BOX = text(f"""
SELECT r.id, ST_Distance(r.geom::geography, pt.g::geography) AS metres
  FROM service_requests r, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) pt
 WHERE r.status <> 'closed' AND r.geom && ST_Expand(pt.g, :deg) {_FILTERS}
 ORDER BY metres, r.id
 LIMIT :limit""")

_CARDS = text("""
SELECT r.id, r.public_id, r.service_code, s.name AS service_name, s.sensitive, r.status, r.address,
       r.description, ST_Y(r.geom) AS lat, ST_X(r.geom) AS lon, r.requested_at, r.expected_at,
       c.code AS crew_code, c.name AS crew_name, now() AS now
  FROM service_requests r JOIN services s ON s.code = r.service_code LEFT JOIN crews c ON c.id = r.crew_id
 WHERE r.id = ANY(:ids)""")


def _params(lat, lon, crew_ids, service, overdue):
    return {"lat": lat, "lon": lon, "all_crews": crew_ids is None, "crew_ids": list(crew_ids or []),
            "service": service or None, "overdue": bool(overdue)}


def nearest_ids(conn, lat, lon, *, limit=50, crew_ids=None, service=None, overdue=False):
    """[(request id, metres)] of the `limit` open tickets nearest to (lat, lon), nearest first.

    crew_ids=None means every crew; otherwise only tickets assigned to one of those crews.
    Ties in metres are broken by id, so the order is the brute-force order exactly.
    """
    lat, lon = check_point(lat, lon)
    limit = max(1, min(int(limit), NEAR_LIMIT_MAX))
    params = _params(lat, lon, crew_ids, service, overdue)
    cand = max(4 * limit, 64)
    try:   # one round-trip: the two SET LOCALs and the KNN statement
        rows = conn.execute(_KNN, {**params, "cand": cand}).all()
    finally:
        conn.execute(_RESTORE)
    ranked = sorted(rows, key=lambda r: (r.metres, r.id))
    if len(rows) < cand:            # the index ran out: every matching open ticket is a candidate
        return [(r.id, r.metres) for r in ranked[:limit]]
    reach = ranked[limit - 1].metres
    farthest_deg = max(r.deg for r in rows)
    if reach <= _low_metres(lat, farthest_deg):
        return [(r.id, r.metres) for r in ranked[:limit]]
    # The bound failed (candidates crowded on one side): take all points that could be that close.
    deg = reach / _M_PER_DEG_LOW / math.cos(math.radians(min(89.0, abs(lat) + reach / _M_PER_DEG_LOW + 0.01)))
    box = conn.execute(_BOX, {**params, "deg": deg, "limit": limit}).all()
    return [(r.id, r.metres) for r in box]


def _low_metres(lat, deg):
    """A lower bound on the metres to any point at least `deg` degrees from a point at latitude `lat`."""
    worst_lat = min(89.0, abs(lat) + deg)
    return _M_PER_DEG_LOW * math.cos(math.radians(worst_lat)) * deg


def sla_state(expected_at, now):
    if expected_at is None:
        return "no_sla"
    if expected_at < now:
        return "overdue"
    if (expected_at - now).total_seconds() < DUE_SOON_HOURS * 3600:
        return "due_soon"
    return "on_time"


def closed_sla_state(expected_at, closed_at):
    """A closed ticket was late if it closed after its due date, not because that date has passed since."""
    if expected_at is None:
        return "no_sla"
    return "closed_late" if closed_at > expected_at else "closed_in_time"


def format_age(hours):
    """An age as the crew's list shows it (crew-map.js formatAge): "< 1 h", "5 h" up to two days, then days."""
    if hours < 1:
        return "< 1 h"
    if hours < 48:
        return f"{int(hours + 0.5)} h"
    return f"{int(hours / 24 + 0.5)} d"


def _when(moment):
    """A date and time on the crew's pages, in the city's time zone (the session's, gis.db)."""
    return f"{moment.day} {moment:%b %Y, %H:%M}" if moment else None


def _cards(conn, ids_metres):
    if not ids_metres:
        return []
    rows = {r.id: r for r in conn.execute(_CARDS, {"ids": [i for i, _ in ids_metres]})}
    out = []
    for rid, metres in ids_metres:
        r = rows[rid]
        out.append({
            "id": r.id, "public_id": r.public_id, "service_code": r.service_code,
            "service_name": r.service_name,
            "sensitive": r.sensitive, "status": r.status, "address": r.address, "lat": r.lat, "lon": r.lon,
            "distance_m": round(metres, 1) if metres is not None else None,
            "age_hours": round((r.now - r.requested_at).total_seconds() / 3600, 1),
            "requested_at": r.requested_at.isoformat(),
            "expected_at": r.expected_at.isoformat() if r.expected_at else None,
            "sla": sla_state(r.expected_at, r.now),
            "crew": {"code": r.crew_code, "name": r.crew_name} if r.crew_code else None,
        })
    return out


def near_me(conn, user, lat, lon, *, scope="mine", service=None, overdue=False, limit=50):
    """Cards of the open tickets nearest to (lat, lon) for this user, nearest first.

    scope "mine" = the user's crews, "all" = every crew. Each card has distance_m (geodesic),
    age_hours, category, SLA state ("overdue", "due_soon", "on_time", "no_sla").
    """
    if scope not in ("mine", "all"):
        raise InvalidInput("scope must be 'mine' or 'all'", field="scope")
    if service is not None and len(str(service)) > 64:
        raise InvalidInput("unknown category", field="service")
    crew_ids = list(user.crew_ids) if scope == "mine" else None
    return _cards(conn, nearest_ids(conn, lat, lon, limit=limit, crew_ids=crew_ids, service=service,
                                    overdue=overdue))


# --- who may act, and the ticket as the crew sees it ------------------------------------------

def lock_for_crew(conn, user, public_id):
    """Lock the request row and check the user may act on it: a member of its crew, or a supervisor.

    Raises NotFound / Forbidden. The lock is held until the caller's transaction ends, so the crew
    cannot change between this check and the action.
    """
    row = conn.execute(text("SELECT r.id, r.crew_id, r.status, c.name AS crew_name FROM service_requests r "
                            "LEFT JOIN crews c ON c.id = r.crew_id WHERE r.public_id = :p FOR UPDATE OF r"),
                       {"p": str(public_id)[:64]}).first()
    if row is None:
        raise NotFound(f"no request {str(public_id)[:32]!r}")
    if user.role not in SUPER_ROLES and row.crew_id not in user.crew_ids:
        # naming the crew tells whoever finds this refused (often after working offline) whom to call
        owner = f" ({row.crew_name})" if row.crew_name else ""
        raise Forbidden(f"this request belongs to another crew{owner}; ask a supervisor to reassign it")
    return row


def record_position(conn, user, crew_id, lat, lon):
    """Remember where the acting crew was (nearest-crew routing). No commit: part of the action."""
    lat, lon = check_point(lat, lon)
    crews = [crew_id] if crew_id in user.crew_ids else list(user.crew_ids)
    if not crews:
        return 0
    return conn.execute(text("UPDATE crews SET last_position = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), "
                             "last_seen_at = now() WHERE id = ANY(:ids)"),
                        {"lat": lat, "lon": lon, "ids": crews}).rowcount


def can_view(user, crew_id):
    return user.role in SUPER_ROLES or crew_id in user.crew_ids


def ticket_detail(conn, user, public_id):
    """Everything the crew needs on one ticket: place, description, attributes, history with internal
    notes, photos and the callers' names (no phone numbers or e-mails: the crew does not call them)."""
    from gis.lifecycle import history
    row = conn.execute(text("""
        SELECT r.id, r.public_id, r.service_code, s.name AS service_name, s.sensitive,
               s.attributes AS questions,
               r.status, r.closure_reason, r.description, r.attributes, r.address, r.address_note, r.districts,
               ST_Y(r.geom) AS lat, ST_X(r.geom) AS lon, r.requested_at, r.expected_at, r.closed_at,
               r.crew_id, c.code AS crew_code, c.name AS crew_name, d.public_id AS duplicate_of_public_id,
               now() AS now
          FROM service_requests r JOIN services s ON s.code = r.service_code
          LEFT JOIN crews c ON c.id = r.crew_id LEFT JOIN service_requests d ON d.id = r.duplicate_of
         WHERE r.public_id = :p"""), {"p": str(public_id)[:64]}).first()
    if row is None:
        raise NotFound(f"no request {str(public_id)[:32]!r}")
    ticket = dict(row._mapping)
    labels = {q.get("code"): q.get("description") or q.get("code") for q in (row.questions or [])
              if isinstance(q, dict)}
    ticket["attribute_list"] = [(labels.get(k, k), v) for k, v in (row.attributes or {}).items()]
    closed = row.status == "closed"
    ticket["sla"] = closed_sla_state(row.expected_at, row.closed_at) if closed else sla_state(row.expected_at, row.now)
    # a closed ticket's age is how long it was open
    ticket["age_hours"] = round(((row.closed_at if closed else row.now) - row.requested_at).total_seconds() / 3600, 1)
    ticket["age_text"] = format_age(ticket["age_hours"])
    ticket["due_text"], ticket["closed_text"] = _when(row.expected_at), _when(row.closed_at)
    ticket["closure_label"] = dict(CLOSE_REASONS).get(row.closure_reason, row.closure_reason)
    ticket["may_act"] = can_view(user, row.crew_id)
    ticket["may_supervise"] = user.role in SUPER_ROLES          # reopen, mark as a duplicate
    # Another crew's ticket: its place and public history, not their notes, photos or callers.
    events = history(conn, row.id, public=not ticket["may_act"])
    ticket["history"] = events
    ticket["internal_notes"] = [e for e in events if e.get("internal_note")]
    if not ticket["may_act"]:       # the caller's own words about the place are for the crew on the job
        ticket["address_note"] = None
    ticket["photos"] = [_photo_card(e, row.lat, row.lon) for e in events if e.get("media")]
    ticket["contacts"] = [] if not ticket["may_act"] else [
        " ".join(p for p in (c.first_name, c.last_name) if p) for c in conn.execute(text(
            "SELECT first_name, last_name FROM contacts WHERE request_id = :id ORDER BY id"), {"id": row.id})
        if c.first_name or c.last_name]
    ticket["navigation"] = {
        "geo": f"geo:{row.lat:.6f},{row.lon:.6f}?q={row.lat:.6f},{row.lon:.6f}",
        "maps": f"https://www.google.com/maps/dir/?api=1&destination={row.lat:.6f},{row.lon:.6f}",
    }
    return ticket


def _photo_card(event, lat, lon):
    """A photo of the history, with where it was taken (EXIF GPS, staff only) and how far that is."""
    taken = ((event.get("data") or {}).get("photo") or {}).get("taken_at")
    card = {"name": event["media"], "taken_at": taken, "metres_from_ticket": None}
    if taken:
        card["metres_from_ticket"] = round(GEOD.inv(lon, lat, taken["lon"], taken["lat"])[2])
    return card


def crew_choices(conn):
    return [dict(r._mapping) for r in conn.execute(text("SELECT code, name FROM crews ORDER BY name"))]


def now_utc():
    return datetime.now(timezone.utc)


# --- actions ------------------------------------------------------------------------------------

# what the crew's buttons say → the lifecycle action
ACTIONS = {"accept": "acknowledge", "start": "start", "close": "close", "reassign": "reassign",
           "note": "note", "reopen": "reopen"}
KEY_MAX = 200


def _done_by_key(conn, key):
    return conn.execute(text("SELECT e.request_id, r.public_id FROM request_events e "
                             "JOIN service_requests r ON r.id = e.request_id WHERE e.idempotency_key = :k"),
                        {"k": key}).first()


def act(conn, user, public_id, action, *, key, lat=None, lon=None, reason=None, note=None,
        internal_note=None, crew_code=None, photo=None, media_dir=None):
    """One crew action on a ticket through gis.lifecycle.apply; commits; returns the ticket dict.

    `key` (the idempotency key the page made for this action) makes a replay a no-op: the same key
    again returns the first result with repeated=True, even when two replays race. `photo` (bytes)
    is checked and stored only when the action is allowed; `lat`/`lon` (the device's position) is
    recorded as the crew's last position in the same transaction.
    """
    from gis import lifecycle, media
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action; one of {', '.join(ACTIONS)}", field="action")
    if action == "reopen" and user.role not in SUPER_ROLES:
        raise Forbidden("only a supervisor may reopen a ticket")
    key = _key(key)
    actor = f"{user.role}:{user.username}"
    done = _done_by_key(conn, key)
    if done:
        conn.rollback()
        if done.public_id != str(public_id):
            raise Conflict("this action key was already used for another request")
        return {**lifecycle.find_ticket(conn, request_id=done.request_id), "repeated": True}
    extra, stored = {}, None
    try:
        row = lock_for_crew(conn, user, public_id)
        if action == "reassign":
            if not crew_code:
                raise InvalidInput("choose the crew to hand the ticket to", field="crew")
            if not (reason or "").strip():
                raise InvalidInput("say why the ticket is reassigned", field="reason")
            internal_note = f"Reassigned: {reason.strip()}" + (f"\n{internal_note}" if internal_note else "")
        if action == "reopen":
            if not (reason or "").strip():
                raise InvalidInput("say why the ticket is reopened", field="reason")
            internal_note = f"Reopened: {reason.strip()}" + (f"\n{internal_note}" if internal_note else "")
        if action == "note" and not (internal_note or "").strip():
            raise InvalidInput("the note is empty", field="internal_note")
        if lat not in (None, "") and lon not in (None, ""):
            record_position(conn, user, row.crew_id, lat, lon)
            extra["position"] = {"lat": float(lat), "lon": float(lon)}
        if photo:
            if action not in ("close", "note", "start"):
                raise InvalidInput("a photo goes with a closure, a start or a note", field="photo")
            stored = media.save_photo(photo, media_dir)
            extra["photo"] = {"width": stored.width, "height": stored.height, "taken_at": stored.taken_at}
        ticket = lifecycle.apply(conn, row.id, ACTIONS[action], actor,
                                 public_note=note if action in ("close", "reopen") else None,
                                 internal_note=internal_note, media=stored.name if stored else None,
                                 reason=reason if action == "close" else None,
                                 crew_code=crew_code if action == "reassign" else None,
                                 idempotency_key=key, data=extra)
    except BaseException as exc:
        conn.rollback()
        if stored:
            media.delete_photo(media_dir, stored.name)
        # A replay racing the first send: the first one won, so this one is that same action.
        if isinstance(exc, (Conflict, IntegrityError)):
            done = _done_by_key(conn, key)
            conn.rollback()
            if done and done.public_id == str(public_id):
                return {**lifecycle.find_ticket(conn, request_id=done.request_id), "repeated": True}
        raise
    return ticket


def _key(key):
    key = (str(key or "").strip())[:KEY_MAX]
    if not key:
        raise InvalidInput("every action needs an idempotency key", field="key")
    return key


def mark_duplicate(conn, user, public_id, duplicate_of, *, key, note=None):
    """A supervisor closes a ticket as a duplicate of another (gis.lifecycle.mark_duplicate); commits.

    `duplicate_of` is the original's number ("#1000123" or "1000123"). Its callers follow the original
    from then on. The same action replayed (the ticket is already a duplicate of that one) answers
    repeated=True instead of a conflict, as `act` does for its idempotency keys.
    """
    from gis import lifecycle
    if user.role not in SUPER_ROLES:
        raise Forbidden("only a supervisor may mark a duplicate")
    _key(key)
    parent = str(duplicate_of or "").strip().lstrip("#").strip()[:64]
    if not parent:
        raise InvalidInput("give the number of the original ticket", field="duplicate_of")
    done = conn.execute(text("SELECT r.id FROM service_requests r JOIN service_requests p ON p.id = r.duplicate_of "
                             "WHERE r.public_id = :c AND p.public_id = :p AND r.status = 'closed'"),
                        {"c": str(public_id)[:64], "p": parent}).first()
    conn.rollback()
    if done:
        return {**lifecycle.find_ticket(conn, request_id=done.id), "repeated": True}
    ticket = lifecycle.mark_duplicate(conn, str(public_id)[:64], parent, f"{user.role}:{user.username}", note=note)
    return {**ticket, "repeated": False}


def categories(conn):
    return [dict(r._mapping) for r in conn.execute(
        text("SELECT code, name FROM services WHERE active ORDER BY name"))]


CLOSE_REASONS = (("fixed", "Fixed / done"), ("not_found", "Nothing found on site"),
                 ("duplicate", "Duplicate"), ("referred", "Referred to another agency"),
                 ("no_action", "No action needed"))
