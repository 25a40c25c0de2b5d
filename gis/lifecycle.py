"""A request's life after intake: acknowledge, start, close, reopen, reassign, notes, duplicates.

Every change is one transaction that locks the request row, checks the transition, updates the
request, appends an event (actor, time, public/internal note, photo) and queues outbox rows:
`publish` for every change (map layers, ArcGIS), `notify` for the changes callers hear about
(created, assigned, closed, reopened). An idempotency key on the event makes a retried action
(a crew's phone resending after a dropped connection) a no-op instead of a second closure.
"""
import json

from sqlalchemy import text

from gis.errors import Conflict, InvalidInput, NotFound
from gis.intake import _clean_contact, find_ticket
from gis.models import CLOSURE_REASONS

# action → (statuses it may start from, status after, event kind, callers are told)
TRANSITIONS = {
    "acknowledge": (("open",), "acknowledged", "acknowledged", False),
    "start": (("open", "acknowledged"), "in_progress", "started", False),
    "close": (("open", "acknowledged", "in_progress"), "closed", "closed", True),
    "reopen": (("closed",), "open", "reopened", True),
    "reassign": (("open", "acknowledged", "in_progress"), None, "reassigned", True),
    "note": (("open", "acknowledged", "in_progress", "closed"), None, "note", False),
}
NOTE_MAX = 4000
# the public note of a closure as a duplicate when the supervisor writes none (the callers' text says it
# in its own words, so gis.notify leaves this one out of it)
DUPLICATE_NOTE = "Closed as a duplicate: we are following it on request {parent}."

_LOCK = text("SELECT id, public_id, status, service_code, crew_id, duplicate_of FROM service_requests "
             "WHERE {col} = :v FOR UPDATE")

_EVENT = text("""
INSERT INTO request_events (request_id, kind, status, public_note, internal_note, media, actor, data,
                            idempotency_key)
VALUES (:rid, :kind, :status, :public_note, :internal_note, :media, :actor, CAST(:data AS jsonb), :key)
RETURNING id""")

_OUTBOX = text("""
INSERT INTO outbox (topic, payload)
SELECT 'publish', jsonb_build_object('request_id', :rid, 'event_id', :eid)
UNION ALL
SELECT 'notify', jsonb_build_object('request_id', :rid, 'event_id', :eid, 'kind', :kind)
 WHERE :notify AND EXISTS (SELECT 1 FROM contacts WHERE request_id = :rid AND notify)""")


def _note(value, name):
    if value is None:
        return None
    value = str(value).strip()
    if len(value) > NOTE_MAX:
        raise InvalidInput(f"{name} is longer than {NOTE_MAX} characters", field=name)
    return value or None


def _lock(conn, ref):
    """Lock the request by internal id (int) or public id (str)."""
    col = "id" if isinstance(ref, int) else "public_id"
    row = conn.execute(text(_LOCK.text.format(col=col)), {"v": ref if col == "id" else str(ref)[:64]}).first()
    if row is None:
        raise NotFound(f"no request {str(ref)[:32]!r}")
    return row


def _already_done(conn, key):
    if not key:
        return None
    return conn.execute(text("SELECT request_id FROM request_events WHERE idempotency_key = :k"), {"k": key}).first()


def _record(conn, rid, kind, status, actor, public_note=None, internal_note=None, media=None, data=None,
            key=None, notify=False):
    eid = conn.execute(_EVENT, {"rid": rid, "kind": kind, "status": status, "public_note": public_note,
                                "internal_note": internal_note, "media": media, "actor": actor,
                                "data": json.dumps(data or {}), "key": key}).scalar_one()
    conn.execute(_OUTBOX, {"rid": rid, "eid": eid, "kind": kind, "notify": notify})
    return eid


def _crew_id(conn, crew_code):
    crew_id = conn.scalar(text("SELECT id FROM crews WHERE code = :c"), {"c": str(crew_code)[:64]})
    if crew_id is None:
        raise InvalidInput(f"no crew {str(crew_code)[:64]!r}", field="crew")
    return crew_id


def apply(conn, ref, action, actor, *, public_note=None, internal_note=None, media=None, reason=None,
          crew_code=None, service_code=None, idempotency_key=None, data=None, due_by=None):
    """Apply a lifecycle action to request `ref`; commits and returns the ticket dict.

    reason is required for close (one of CLOSURE_REASONS); reassign takes crew_code and/or
    service_code (a new service re-routes by its rules unless a crew is given) and, optionally, a new
    due date `due_by` (a date: the request is then expected by the end of that day). `data` (a dict) is
    kept with the event as internal detail (e.g. where a photo was taken); never published.
    """
    if action not in TRANSITIONS:
        raise InvalidInput(f"unknown action {str(action)[:32]!r}; one of {', '.join(TRANSITIONS)}", field="action")
    sources, after, kind, notify = TRANSITIONS[action]
    public_note, internal_note = _note(public_note, "public_note"), _note(internal_note, "internal_note")
    try:
        done = _already_done(conn, idempotency_key)
        if done:
            conn.rollback()
            return {**find_ticket(conn, request_id=done.request_id), "repeated": True}
        row = _lock(conn, ref)
        if row.status not in sources:
            raise Conflict(f"cannot {action} a request that is {row.status.replace('_', ' ')}")
        extra = dict(data or {})
        data = {}
        if action == "close":
            if reason not in CLOSURE_REASONS:
                raise InvalidInput(f"closure reason must be one of {', '.join(CLOSURE_REASONS)}", field="reason")
            data["reason"] = reason
            conn.execute(text("UPDATE service_requests SET status = 'closed', closure_reason = :r, closed_at = now(), "
                              "updated_at = now() WHERE id = :id"), {"r": reason, "id": row.id})
        elif action == "reopen":
            # no longer a duplicate either: maps, feeds and the ticket pages read duplicate_of
            conn.execute(text("UPDATE service_requests SET status = 'open', closure_reason = NULL, closed_at = NULL, "
                              "duplicate_of = NULL, updated_at = now() WHERE id = :id"), {"id": row.id})
            if row.duplicate_of is not None:
                data = {"was_duplicate_of": row.duplicate_of,
                        "contacts_stopped": _unlink(conn, row.id, row.duplicate_of)}
        elif action == "reassign":
            data = _reassign(conn, row, crew_code, service_code)
            if due_by is not None:
                # end of that day in the city's time zone (the session's, gis.db): what "by 3 Dec" means
                conn.execute(text("UPDATE service_requests "
                                  "SET expected_at = CAST(:d AS date) + 1 - interval '1 second' "
                                  "WHERE id = :id"), {"d": due_by, "id": row.id})
                data["due_by"] = str(due_by)
        elif after:
            conn.execute(text("UPDATE service_requests SET status = :s, updated_at = now() WHERE id = :id"),
                         {"s": after, "id": row.id})
        else:
            conn.execute(text("UPDATE service_requests SET updated_at = now() WHERE id = :id"), {"id": row.id})
        _record(conn, row.id, kind, after or row.status, actor, public_note, internal_note, media,
                {**extra, **data}, idempotency_key, notify)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return {**find_ticket(conn, request_id=row.id), "repeated": False}


def _reassign(conn, row, crew_code, service_code):
    if not crew_code and not service_code:
        raise InvalidInput("reassign needs a crew or a service", field="crew")
    data = {"from_crew_id": row.crew_id, "from_service": row.service_code}
    if service_code and service_code != row.service_code:
        if not conn.scalar(text("SELECT 1 FROM services WHERE code = :c AND active"), {"c": str(service_code)[:64]}):
            raise InvalidInput(f"no service {str(service_code)[:64]!r}", field="service_code")
        conn.execute(text("UPDATE service_requests SET service_code = :s WHERE id = :id"),
                     {"s": service_code, "id": row.id})
        data["to_service"] = service_code
    if crew_code:
        crew_id, routed_by = _crew_id(conn, crew_code), "reassigned by hand"
    else:
        crew_id, routed_by = _reroute(conn, row.id, service_code)
    conn.execute(text("UPDATE service_requests SET crew_id = :c, routed_by = :rb, updated_at = now() WHERE id = :id"),
                 {"c": crew_id, "rb": routed_by, "id": row.id})
    data["to_crew_id"] = crew_id
    return data


def _reroute(conn, request_id, service_code):
    from gis.locate import route_preview
    lat, lon = conn.execute(text("SELECT ST_Y(geom), ST_X(geom) FROM service_requests WHERE id = :id"),
                            {"id": request_id}).one()
    decision = route_preview(conn, lat, lon, service_code)[0]
    crew = decision["crew"]
    return (_crew_id(conn, crew["code"]) if crew else None), decision["routed_by"]


# every address the caller gives (normalised phone; e-mail in any case) is already one we notify
_ALREADY_ATTACHED = text("""
SELECT (CAST(:phone AS text) IS NULL OR EXISTS (SELECT 1 FROM contacts
            WHERE request_id = :rid AND notify AND phone = :phone))
   AND (CAST(:email AS text) IS NULL OR EXISTS (SELECT 1 FROM contacts
            WHERE request_id = :rid AND notify AND lower(email) = lower(:email)))""")

# the attached caller alone is told the number, through the outbox like every other message
_CONFIRM = text("""INSERT INTO outbox (topic, payload) VALUES ('notify', jsonb_build_object(
                     'request_id', :rid, 'event_id', :eid, 'kind', 'caller_attached', 'contact_id', :cid))""")


def attach_caller(conn, ref, contact, actor, note=None):
    """Add a caller to an existing request (a duplicate call) so they hear when it closes.

    They are sent the request's number at once. A caller whose phone and e-mail are already on the
    request is not added again (no second contact, no second confirmation)."""
    contact = _clean_contact(contact)
    if not any(contact.values()):
        raise InvalidInput("give the caller's phone or e-mail to attach", field="phone")
    try:
        row = _lock(conn, ref)
        if row.status == "closed":
            raise Conflict("this request is already closed; create a new one or reopen it")
        known = bool(contact["phone"] or contact["email"]) and conn.scalar(
            _ALREADY_ATTACHED, {"rid": row.id, "phone": contact["phone"], "email": contact["email"]})
        contact_id = None
        if not known:
            contact_id = conn.scalar(text(
                "INSERT INTO contacts (request_id, first_name, last_name, phone, email, device_id, account_id) "
                "VALUES (:rid, :first_name, :last_name, :phone, :email, :device_id, :account_id) RETURNING id"),
                {"rid": row.id, **contact})
        data = {"channel": "agent", "already_attached": True} if known else {"channel": "agent"}
        eid = _record(conn, row.id, "caller_attached", row.status, actor, internal_note=_note(note, "note"),
                      data=data)
        if contact_id and (contact["phone"] or contact["email"]):
            conn.execute(_CONFIRM, {"rid": row.id, "eid": eid, "cid": contact_id})
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return find_ticket(conn, request_id=row.id)


# The duplicate's callers who are not already on the original (by phone / e-mail, as attach_caller
# checks) are copied onto it: they asked to hear about this problem, and from now on it is handled there.
_COPY_CALLERS = text("""
INSERT INTO contacts (request_id, first_name, last_name, phone, email, device_id, account_id, notify)
SELECT :p, c.first_name, c.last_name, c.phone, c.email, c.device_id, c.account_id, c.notify
  FROM contacts c
 WHERE c.request_id = :c AND NOT (
       (c.phone IS NOT NULL OR c.email IS NOT NULL)
   AND (c.phone IS NULL OR EXISTS (SELECT 1 FROM contacts k WHERE k.request_id = :p AND k.notify
                                     AND k.phone = c.phone))
   AND (c.email IS NULL OR EXISTS (SELECT 1 FROM contacts k WHERE k.request_id = :p AND k.notify
                                     AND lower(k.email) = lower(c.email))))
 ORDER BY c.id
RETURNING id""")


def mark_duplicate(conn, ref, parent_ref, actor, note=None):
    """Close `ref` as a duplicate of `parent_ref`; its callers follow the parent from now on.

    Each caller of the duplicate who asked for updates is told once, through the outbox like every
    other status change, that their request was merged with the parent (its number, and how to
    follow it: gis/messages/merged.txt). They are also copied onto the parent, so they hear its later
    updates (e.g. when it is fixed): telling someone to "follow #Y" and then leaving them to poll would
    hide the one answer they called for, and the console's "attach caller" gives a duplicate call the
    same treatment. The copy is undone if the duplicate is reopened (see `_unlink`). The parent must be
    open: a duplicate of a closed request would promise updates that will not come (reopen it first).
    """
    try:
        child, parent = _lock(conn, ref), _lock(conn, parent_ref)
        if child.id == parent.id:
            raise InvalidInput("a request cannot duplicate itself", field="duplicate_of")
        if child.status == "closed":
            raise Conflict("the request is already closed")
        if parent.status == "closed":
            raise Conflict(f"request {parent.public_id} is closed: reopen it first, or close this one with "
                           "another reason", field="duplicate_of")
        conn.execute(text("UPDATE service_requests SET status = 'closed', closure_reason = 'duplicate', "
                          "closed_at = now(), updated_at = now(), duplicate_of = :p WHERE id = :c"),
                     {"p": parent.id, "c": child.id})
        copied = conn.execute(_COPY_CALLERS, {"p": parent.id, "c": child.id}).scalars().all()
        # notify=True: the 'closed' event names the parent (data.duplicate_of), so gis.notify words it
        # as a merge; the notifications table sends it once per caller and channel, retries included
        _record(conn, child.id, "closed", "closed", actor, public_note=_note(note, "note") or
                DUPLICATE_NOTE.format(parent=parent.public_id),
                data={"reason": "duplicate", "duplicate_of": parent.id}, notify=True)
        _record(conn, parent.id, "duplicate_linked", parent.status, actor,
                data={"duplicate": child.id, "contacts_copied": copied})
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return find_ticket(conn, request_id=child.id)


def _unlink(conn, child_id, parent_id):
    """A reopened duplicate is its own request again: the callers copied onto its former parent stop
    hearing about the parent (they hear about this one). Returns the contact ids stopped."""
    copied = conn.scalar(text("SELECT data -> 'contacts_copied' FROM request_events WHERE request_id = :p "
                              "AND kind = 'duplicate_linked' AND (data ->> 'duplicate')::bigint = :c "
                              "ORDER BY id DESC LIMIT 1"), {"p": parent_id, "c": child_id}) or []
    if copied:
        conn.execute(text("UPDATE contacts SET notify = false WHERE request_id = :p AND id = ANY(:ids)"),
                     {"p": parent_id, "ids": [int(i) for i in copied]})
    return copied


def history(conn, request_id, public=True):
    """Events of a request, oldest first. Public history omits internal notes and the actor's name."""
    rows = conn.execute(text("SELECT id, kind, status, public_note, internal_note, media, actor, data, at "
                             "FROM request_events WHERE request_id = :id ORDER BY at, id"), {"id": request_id})
    out = []
    for r in rows:
        event = {"kind": r.kind, "status": r.status, "note": r.public_note, "at": r.at.isoformat()}
        if public:
            if r.kind in ("caller_attached",) or (r.kind == "note" and not r.public_note):
                continue
        else:
            event.update(internal_note=r.internal_note, media=r.media, actor=r.actor, data=r.data, id=r.id)
        out.append(event)
    return out
