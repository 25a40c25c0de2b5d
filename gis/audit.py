"""The contact audit trail: who saw or changed a caller's details, when, from where (table contact_audit).

Call `viewed` wherever a page or API answer shows a caller's name, phone or e-mail to staff, and
`changed` where they are created or edited. Field names are recorded, never values, so the trail holds
no personal data of callers. It is written on the caller's connection: a view is recorded in the same
transaction as the read, and the caller commits (or the request's teardown rolls both back).

    from gis import audit
    audit.viewed(conn, actor="agent:alice", request_ids=[ticket_id], fields=("name", "phone"),
                 context="agent.screen_pop", ip=request.remote_addr)
"""
import ipaddress

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import BigInteger, Text

from gis.errors import InvalidInput

ACTIONS = ("view", "create", "update", "delete", "export")
FIELDS = ("name", "phone", "email", "device_id", "account_id", "notify")

# One row per contact of the given requests (or per request when it has none), or per given contact.
_RECORD = text("""
INSERT INTO contact_audit (actor, action, request_id, contact_id, fields, context, ip)
SELECT :actor, :action, t.request_id, t.contact_id, :fields, :context, CAST(:ip AS inet)
  FROM (
    SELECT r.rid AS request_id, c.id AS contact_id
      FROM unnest(CAST(:request_ids AS bigint[])) AS r(rid)
      LEFT JOIN contacts c ON c.request_id = r.rid AND (CAST(:phone AS text) IS NULL OR c.phone = :phone)
    UNION ALL
    SELECT c.request_id, c.id FROM contacts c WHERE c.id = ANY(CAST(:contact_ids AS bigint[]))
  ) t""").bindparams(bindparam("fields", type_=ARRAY(Text)),
                     bindparam("request_ids", type_=ARRAY(BigInteger)),
                     bindparam("contact_ids", type_=ARRAY(BigInteger)))

_BY_PHONE = text("""
INSERT INTO contact_audit (actor, action, request_id, contact_id, fields, context, ip)
SELECT :actor, 'view', c.request_id, c.id, :fields, :context, CAST(:ip AS inet)
  FROM contacts c WHERE c.phone = :phone""").bindparams(bindparam("fields", type_=ARRAY(Text)))


def _check(actor, action, fields, ip):
    if not actor or not isinstance(actor, str):
        raise InvalidInput("the audit trail needs an actor", field="actor")
    if action not in ACTIONS:
        raise InvalidInput(f"audit action must be one of {', '.join(ACTIONS)}", field="action")
    bad = [f for f in fields if f not in FIELDS]
    if bad:
        raise InvalidInput(f"unknown contact field {bad[0]!r}", field="fields")
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            ip = None  # a proxy's odd remote_addr must not block the page
    return ip


def record(conn, actor, action, *, request_ids=(), contact_ids=(), fields=FIELDS, context=None, ip=None,
           phone=None):
    """Write audit rows; returns how many. `phone` narrows request_ids to the contacts with that phone."""
    ip = _check(actor, action, fields, ip)
    result = conn.execute(_RECORD, {
        "actor": actor[:200], "action": action, "request_ids": [int(i) for i in request_ids],
        "contact_ids": [int(i) for i in contact_ids], "fields": list(fields),
        "context": (context or "")[:200] or None, "ip": ip, "phone": phone})
    return result.rowcount


def viewed(conn, actor, *, request_ids=(), contact_ids=(), fields=FIELDS, context=None, ip=None, phone=None):
    return record(conn, actor, "view", request_ids=request_ids, contact_ids=contact_ids, fields=fields,
                  context=context, ip=ip, phone=phone)


def viewed_by_phone(conn, actor, phone, *, fields=FIELDS, context=None, ip=None):
    """A look-up by phone number showed every contact with that number (the agent's screen-pop)."""
    ip = _check(actor, "view", fields, ip)
    if not phone:
        return 0
    return conn.execute(_BY_PHONE, {"actor": actor[:200], "phone": phone, "fields": list(fields),
                                    "context": (context or "")[:200] or None, "ip": ip}).rowcount


def changed(conn, actor, *, request_ids=(), contact_ids=(), fields=FIELDS, context=None, ip=None,
            action="update"):
    return record(conn, actor, action, request_ids=request_ids, contact_ids=contact_ids, fields=fields,
                  context=context, ip=ip)


def trail(conn, *, request_id=None, actor=None, limit=200):
    """The newest audit rows for a request or an actor (for a supervisor's or auditor's look)."""
    rows = conn.execute(text("""
        SELECT id, at, actor, action, request_id, contact_id, fields, context, host(ip) AS ip
          FROM contact_audit
         WHERE (CAST(:rid AS bigint) IS NULL OR request_id = :rid)
           AND (CAST(:actor AS text) IS NULL OR actor = :actor)
         ORDER BY at DESC, id DESC LIMIT :limit"""),
                        {"rid": request_id, "actor": actor, "limit": max(1, min(int(limit), 5000))})
    return [dict(r._mapping) for r in rows]
