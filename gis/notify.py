"""Automatic status updates: drain the outbox's `notify` rows into SMS (Twilio) and e-mail (SMTP).

For each row (an event callers hear about: created, assigned, closed, reopened) every contact of the
request who did not opt out gets one message per channel. Exactly once: a delivery row
(event, contact, channel) is committed before the message goes to the provider and marked sent just
after, so a worker killed mid-batch resumes without repeating what it sent; the only window for a
repeat is the instant between the provider accepting a message and that commit. Failures back off
exponentially in the outbox row (attempts, next_try, last_error); nothing is dropped. For SMS even that
instant is covered: a delivery left half-done is checked against Twilio's own message log before it
is sent again. SMTP has no log to ask, so an e-mail left half-done is sent again with the same
Message-ID (one per delivery row): the transport is at-least-once in that instant, and mail stores
collapse a repeated Message-ID into one message — the same idea as our idempotency keys.
"""
import os
import smtplib
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import text

TOPIC = "notify"
BATCH = 50
MAX_BACKOFF_S = 3600
MESSAGES = Path(__file__).resolve().parent / "messages"

_CLAIM = text("""SELECT id, payload, attempts FROM outbox WHERE topic = :t AND done_at IS NULL AND next_try <= now()
                 ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED""")
_DELIVERIES = text("""
SELECT c.id AS contact_id, c.phone, c.email, r.public_id, s.name AS service_name, r.status,
       e.kind, e.public_note, cr.name AS crew_name,
       EXISTS (SELECT 1 FROM sms_optouts o WHERE o.phone = c.phone) AS opted_out
  FROM request_events e
  JOIN service_requests r ON r.id = e.request_id
  JOIN services s ON s.code = r.service_code
  JOIN contacts c ON c.request_id = r.id AND c.notify
  LEFT JOIN crews cr ON cr.id = r.crew_id
 WHERE e.id = :event""")
_CLAIM_DELIVERY = text("""INSERT INTO notifications (event_id, contact_id, channel) VALUES (:e, :c, :ch)
                          ON CONFLICT (event_id, contact_id, channel) DO NOTHING RETURNING id""")
_PENDING_DELIVERY = text("""SELECT id, created_at FROM notifications
                            WHERE event_id = :e AND contact_id = :c AND channel = :ch
                            AND status = 'sending'""")


def message(kind, row):
    """The text for an event kind, from gis/messages/<kind>.txt (falls back to 'updated')."""
    path = MESSAGES / f"{kind}.txt"
    if not path.exists():
        path = MESSAGES / "updated.txt"
    return path.read_text().strip().format(
        number=row.public_id, service=row.service_name, crew=row.crew_name or "the responsible crew",
        note=f" {row.public_note}" if row.public_note else "", status=row.status.replace("_", " "))


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


def _deliver(engine, event_id, row, channel, senders):
    """Send one message unless it was sent before; returns True when nothing is left to do."""
    interrupted = None
    with engine.begin() as conn:
        claimed = conn.execute(_CLAIM_DELIVERY, {"e": event_id, "c": row.contact_id, "ch": channel}).scalar()
        if claimed is None:   # a row exists: sent, skipped, or claimed by a worker that died mid-delivery
            pending = conn.execute(_PENDING_DELIVERY, {"e": event_id, "c": row.contact_id, "ch": channel}).first()
            if pending is None:
                return True
            claimed, interrupted = pending.id, pending.created_at
    sender = senders.get(channel)
    body = message(row.kind, row)
    earlier = None
    if interrupted is not None and sender is not None and hasattr(sender, "sent_since"):
        from datetime import timedelta
        earlier = sender.sent_since(row.phone, body, interrupted - timedelta(minutes=1))
    if earlier:
        status, provider_id = "sent", earlier
    elif sender is None or (channel == "sms" and row.opted_out):
        status, provider_id = "skipped", None
    elif channel == "sms":
        status, provider_id = "sent", sender.send(row.phone, body)
    else:
        status, provider_id = "sent", sender.send(row.email, f"311 request {row.public_id}", body, claimed)
    with engine.begin() as conn:
        conn.execute(text("UPDATE notifications SET status = :s, provider_id = :p, sent_at = now() WHERE id = :id"),
                     {"s": status, "p": provider_id, "id": claimed})
    return True


def run_once(engine, senders, limit=BATCH):
    """Deliver one batch of due `notify` rows; returns how many rows were finished."""
    with engine.connect() as conn:
        rows = conn.execute(_CLAIM, {"t": TOPIC, "n": limit}).all()
        done = 0
        for row in rows:
            try:
                event_id = int(row.payload["event_id"])
                for d in conn.execute(_DELIVERIES, {"event": event_id}).all():
                    for channel, address in (("sms", d.phone), ("email", d.email)):
                        if address:
                            _deliver(engine, event_id, d, channel, senders)
                conn.execute(text("UPDATE outbox SET done_at = now(), attempts = attempts + 1, last_error = NULL "
                                  "WHERE id = :id"), {"id": row.id})
                done += 1
            except Exception as exc:  # noqa: BLE001 - a provider error postpones the row, never drops it
                delay = min(2 ** (row.attempts + 1), MAX_BACKOFF_S)
                conn.execute(text("UPDATE outbox SET attempts = attempts + 1, last_error = :e, "
                                  "next_try = now() + make_interval(secs => :d) WHERE id = :id"),
                             {"e": f"{type(exc).__name__}: {exc}"[:500], "d": delay, "id": row.id})
        conn.commit()
    return done


def opt_out(conn, phone, stop=True):
    if stop:
        conn.execute(text("INSERT INTO sms_optouts (phone) VALUES (:p) ON CONFLICT DO NOTHING"), {"p": phone})
    else:
        conn.execute(text("DELETE FROM sms_optouts WHERE phone = :p"), {"p": phone})
