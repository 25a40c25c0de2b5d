"""Automatic status updates: drain the outbox's `notify` rows into SMS (Twilio) and e-mail (SMTP).

For each row (an event callers hear about: created, assigned, closed, reopened; or the confirmation to
one caller attached to a ticket) every contact of the request who did not opt out gets one message per
channel, and one address gets one message however many contact rows carry it. Exactly once: a delivery
row (event, contact, channel) is committed before the message goes to the provider and marked sent just
after, so a worker killed mid-batch resumes without repeating what it sent; the only window for a
repeat is the instant between the provider accepting a message and that commit. For SMS even that
instant is covered: a delivery left half-done is checked against Twilio's own message log before it
is sent again. SMTP has no log to ask, so an e-mail left half-done is sent again with the same
Message-ID (one per delivery row): the transport is at-least-once in that instant, and mail stores
collapse a repeated Message-ID into one message — the same idea as our idempotency keys.

Deliveries stand alone: one that fails never holds up the others. An address the provider refuses for
good (Twilio 4xx such as an invalid or unsubscribed number, SMTP 5xx for the recipient) is recorded
'skipped' with the reason in provider_id — the schema knows no 'failed' — and never tried again.
Everything else (network, 5xx, 429) leaves the outbox row to back off exponentially (attempts, next_try,
last_error) and retry what is left; a channel that is not configured leaves its deliveries waiting the
same way, until a worker that has it wakes them. Nothing is dropped.
"""
import logging
import os
import smtplib
import weakref
from collections import Counter
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import text
from twilio.base.exceptions import TwilioException   # small; the client itself is imported when SMS is set up

from gis import site
from gis.lifecycle import DUPLICATE_NOTE

TOPIC = "notify"
BATCH = 50
MAX_BACKOFF_S = 3600
MESSAGES = Path(__file__).resolve().parent / "messages"
log = logging.getLogger(__name__)

_CLAIM = text("""SELECT id, payload, attempts FROM outbox WHERE topic = :t AND done_at IS NULL AND next_try <= now()
                 ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED""")
_DELIVERIES = text("""
SELECT c.id AS contact_id, c.phone, c.email, r.public_id, s.name AS service_name, r.status, r.closure_reason,
       e.kind, e.public_note, cr.name AS crew_name, p.public_id AS merged_into,
       r.duplicate_of IS NOT DISTINCT FROM p.id AS still_merged,
       EXISTS (SELECT 1 FROM sms_optouts o WHERE o.phone = c.phone) AS opted_out
  FROM request_events e
  JOIN service_requests r ON r.id = e.request_id
  JOIN services s ON s.code = r.service_code
  JOIN contacts c ON c.request_id = r.id AND c.notify
  LEFT JOIN crews cr ON cr.id = r.crew_id
  -- a closure as a duplicate (gis.lifecycle.mark_duplicate) names the request it was merged with
  LEFT JOIN service_requests p ON e.kind = 'closed' AND p.id = CAST(e.data ->> 'duplicate_of' AS bigint)
 WHERE e.id = :event AND (CAST(:contact AS bigint) IS NULL OR c.id = :contact)
   -- only callers on the request when it happened: one attached (or copied from a duplicate) before the
   -- worker came round must not be told "we received your request" about somebody else's report
   AND c.created_at <= e.at
 ORDER BY c.id""")
_CLAIM_DELIVERY = text("""INSERT INTO notifications (event_id, contact_id, channel) VALUES (:e, :c, :ch)
                          ON CONFLICT (event_id, contact_id, channel) DO NOTHING RETURNING id""")
_PENDING_DELIVERY = text("""SELECT id, created_at FROM notifications
                            WHERE event_id = :e AND contact_id = :c AND channel = :ch
                            AND status = 'sending'""")
_FINISH = text("UPDATE notifications SET status = :s, provider_id = :p, sent_at = now() WHERE id = :id")
_SKIP = text("""INSERT INTO notifications (event_id, contact_id, channel, status, provider_id, sent_at)
                VALUES (:e, :c, :ch, 'skipped', :p, now()) ON CONFLICT (event_id, contact_id, channel) DO NOTHING""")
# rows that waited for a channel, made due again by a worker that has it (rows another worker holds are its own)
_WAKE = text("""UPDATE outbox SET next_try = now() WHERE id IN (
                  SELECT id FROM outbox WHERE topic = :t AND done_at IS NULL AND next_try > now()
                     AND last_error LIKE :w FOR UPDATE SKIP LOCKED)""")


# How a closure reads to the caller ({reason} in a message: "… is closed: fixed.").
CLOSED_BECAUSE = {"fixed": "fixed", "not_found": "nothing was found there", "duplicate": "it repeats another request",
                  "referred": "referred to the agency in charge", "no_action": "no action was needed"}


def message(kind, row, channel="sms", env=os.environ):
    """The text for an event kind, from gis/messages/<kind>.txt, else 'updated'; a closure as a duplicate
    of another request is 'merged'.

    {follow_up} is how the caller follows the request ({merged} for a merge): texts say "Reply STATUS n
    … STOP to stop texts", which means nothing in an e-mail; e-mails give the request's status page
    when the site's public address is known (PIN311_PUBLIC_URL, read by gis.site), else nothing; a malformed
    one is a ValueError, so the e-mail waits (its delivery is retried, the outbox row's error says why) rather
    than go out with a broken link.
    """
    merged, note = getattr(row, "merged_into", None), row.public_note
    if kind == "closed" and merged:
        kind = "merged"
        note = None if note == DUPLICATE_NOTE.format(parent=merged) else note
    path = MESSAGES / f"{kind}.txt"
    template = (path if path.exists() else MESSAGES / "updated.txt").read_text()
    because = CLOSED_BECAUSE.get(getattr(row, "closure_reason", None))
    follow = merged or row.public_id
    if channel == "sms":
        follow_up = f" Reply STATUS {follow} any time; STOP to stop texts."
    else:
        address = site.public_url(env)
        follow_up = f" Its status: {address}/requests/{follow}" if address else ""
    return template.strip().format(
        number=row.public_id, service=row.service_name, crew=row.crew_name or "the responsible crew",
        note=f" {note}" if note else "", status=row.status.replace("_", " "),
        reason=f": {because}" if because else "", merged=merged, follow_up=follow_up)


class SmtpSender:
    def __init__(self, host, port, sender):
        self.host, self.port, self.sender = host, int(port), sender
        self.domain = sender.rpartition("@")[2] or "localhost"

    def send(self, to, subject, body, delivery_id):
        """Hand one message to the SMTP server; its Message-ID is fixed by the delivery row."""
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, to, subject
        msg["Message-ID"] = f"<pin311.notification.{delivery_id}@{self.domain}>"
        msg.set_content(body)
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            smtp.send_message(msg)
        return msg["Message-ID"]


class TwilioSender:
    """SMS through the `twilio` package; the API base URL is configurable (a local server in tests)."""

    def __init__(self, sid, token, sender, base_url=None):
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        class _Redirect(TwilioHttpClient):
            def request(self, method, url, *args, **kwargs):
                if base_url:
                    url = base_url.rstrip("/") + "/" + url.split("://", 1)[1].split("/", 1)[1]
                return super().request(method, url, *args, **kwargs)

        self.client = Client(sid, token, http_client=_Redirect(timeout=10))
        self.sender = sender

    def send(self, to, body):
        return self.client.messages.create(to=to, from_=self.sender, body=body).sid

    def sent_since(self, to, body, since):
        """The sid of a message with this body already sent to `to` since `since`, else None.

        Asked only after a worker died between handing a message over and recording it: Twilio
        keeps every message, so we look before sending again.
        """
        for m in self.client.messages.list(to=to, date_sent_after=since, limit=100):
            if m.body == body:
                return m.sid
        return None


def senders_from_env(env=os.environ):
    """{'sms': TwilioSender, 'email': SmtpSender} for the channels configured in the environment."""
    found = {}
    if env.get("PIN311_TWILIO_ACCOUNT_SID") and env.get("PIN311_TWILIO_AUTH_TOKEN") and env.get("PIN311_SMS_FROM"):
        found["sms"] = TwilioSender(env["PIN311_TWILIO_ACCOUNT_SID"], env["PIN311_TWILIO_AUTH_TOKEN"],
                                    env["PIN311_SMS_FROM"], env.get("PIN311_TWILIO_API_BASE"))
    if env.get("PIN311_SMTP_HOST"):
        found["email"] = SmtpSender(env["PIN311_SMTP_HOST"], env.get("PIN311_SMTP_PORT", "25"),
                                    env.get("PIN311_MAIL_FROM", "311@localhost"))
    return found


def _waiting(channel):
    return f"waiting for {channel}: not configured"


def _refused(exc):
    """True when the provider refused the address for good, so that trying again cannot help.

    Twilio's 401, 403, 404 and 429 are about our account or our pace, not the number: retried."""
    if isinstance(exc, TwilioException) and isinstance(getattr(exc, "status", None), int):
        return 400 <= exc.status < 500 and exc.status not in (401, 403, 404, 408, 429)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):   # 4xx there means "try later"
        return all(code >= 500 for code, _ in exc.recipients.values())
    return False


def _describe(exc):
    """One line for an error (str() of a Twilio error is coloured and multi-line on a terminal)."""
    if isinstance(exc, TwilioException) and hasattr(exc, "status"):
        why = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "")
        return f"HTTP {exc.status} ({getattr(exc, 'code', None)}): {why}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"SMTP {code} {reply.decode(errors='replace')}" for code, reply in exc.recipients.values())
    return f"{type(exc).__name__}: {exc}"


def _send(sender, channel, row, body, claimed, interrupted):
    """(status, provider_id) of one message handed to its provider."""
    if channel == "sms" and row.opted_out:
        return "skipped", "opted out"
    if row.kind == "caller_attached" and row.status == "closed":   # stale: the closure's message says it all
        return "skipped", "request closed before the confirmation went out"
    if row.merged_into and not row.still_merged:   # stale: its 'reopened' message is the news now
        return "skipped", "reopened before the merge message went out"
    if interrupted is not None and hasattr(sender, "sent_since"):
        earlier = sender.sent_since(row.phone, body, interrupted - timedelta(minutes=1))
        if earlier:
            return "sent", earlier
    if channel == "sms":
        return "sent", sender.send(row.phone, body)
    return "sent", sender.send(row.email, f"311 request {row.public_id}", body, claimed)


def _deliver(engine, event_id, row, channel, sender):
    """Send one message unless it was sent before; returns None when it is finished, else why not yet."""
    interrupted = None
    with engine.begin() as conn:
        claimed = conn.execute(_CLAIM_DELIVERY, {"e": event_id, "c": row.contact_id, "ch": channel}).scalar()
        if claimed is None:   # a row exists: sent, skipped, or claimed by a worker that died mid-delivery
            pending = conn.execute(_PENDING_DELIVERY, {"e": event_id, "c": row.contact_id, "ch": channel}).first()
            if pending is None:
                return None
            claimed, interrupted = pending.id, pending.created_at
    try:
        status, provider_id = _send(sender, channel, row, message(row.kind, row, channel), claimed, interrupted)
    except Exception as exc:  # noqa: BLE001 - a provider's answer: refused for good, or tried again later
        if not _refused(exc):   # the delivery row stays 'sending': the retry asks Twilio's log first
            return f"{channel} to contact {row.contact_id}: {_describe(exc)}"
        log.warning("notify: %s to contact %s refused for good: %s", channel, row.contact_id, _describe(exc))
        status, provider_id = "skipped", f"refused: {_describe(exc)}"[:500]
    with engine.begin() as conn:
        conn.execute(_FINISH, {"s": status, "p": provider_id, "id": claimed})
    return None


def _deliver_event(engine, conn, payload, senders):
    """Every delivery of one outbox row, each on its own; returns (errors, channels waited for)."""
    event_id = int(payload["event_id"])
    errors, waits, first = [], [], {}   # first: (channel, address) -> the contact whose delivery carries it
    for d in conn.execute(_DELIVERIES, {"event": event_id, "contact": payload.get("contact_id")}).all():
        for channel, address in (("sms", d.phone), ("email", d.email)):
            if not address:
                continue
            carrier = first.setdefault((channel, address.lower()), d.contact_id)
            if carrier != d.contact_id:   # the same caller twice on the request: one message
                with engine.begin() as c:
                    c.execute(_SKIP, {"e": event_id, "c": d.contact_id, "ch": channel,
                                      "p": f"same address as contact {carrier}"})
            elif channel not in senders and not (channel == "sms" and d.opted_out):
                waits.append(channel)
            else:
                errors.append(_deliver(engine, event_id, d, channel, senders.get(channel)))
    return [e for e in errors if e], waits


_woken = weakref.WeakSet()   # senders whose channel's waiting rows were made due (once per worker)


def _wake(engine, senders):
    fresh = [channel for channel, sender in senders.items() if sender not in _woken]
    if fresh:
        with engine.begin() as conn:
            for channel in fresh:
                conn.execute(_WAKE, {"t": TOPIC, "w": f"%{_waiting(channel)}%"})
        _woken.update(senders[channel] for channel in fresh)


def run_once(engine, senders, limit=BATCH):
    """Deliver one batch of due `notify` rows; returns how many rows were finished."""
    _wake(engine, senders)
    waiting = Counter()
    with engine.connect() as conn:
        rows = conn.execute(_CLAIM, {"t": TOPIC, "n": limit}).all()
        done = 0
        for row in rows:
            try:
                errors, waits = _deliver_event(engine, conn, row.payload, senders)
            except Exception as exc:  # noqa: BLE001 - the database or a bug postpones the row, never drops it
                errors, waits = [f"{type(exc).__name__}: {exc}"], []
            if not errors and not waits:
                conn.execute(text("UPDATE outbox SET done_at = now(), attempts = attempts + 1, last_error = NULL "
                                  "WHERE id = :id"), {"id": row.id})
                done += 1
                continue
            waiting.update(waits)
            problems = [_waiting(channel) for channel in dict.fromkeys(waits)] + errors
            conn.execute(text("UPDATE outbox SET attempts = attempts + 1, last_error = :e, "
                              "next_try = now() + make_interval(secs => :d) WHERE id = :id"),
                         {"e": "; ".join(problems)[:500], "d": min(2 ** (row.attempts + 1), MAX_BACKOFF_S),
                          "id": row.id})
        conn.commit()
    for channel, count in sorted(waiting.items()):
        log.warning("notify: %d deliveries wait for %s, which is not configured; they stay queued and go out "
                    "once a worker runs with it", count, channel)
    return done


def opt_out(conn, phone, stop=True):
    if stop:
        conn.execute(text("INSERT INTO sms_optouts (phone) VALUES (:p) ON CONFLICT DO NOTHING"), {"p": phone})
    else:
        conn.execute(text("DELETE FROM sms_optouts WHERE phone = :p"), {"p": phone})
