"""Automatic status updates (SMTP and Twilio SMS through local stand-ins) and the SMS/voice webhooks."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from email import message_from_string
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text
from twilio.request_validator import RequestValidator

from gis import intake, lifecycle, notify

TOKEN = "test-twilio-auth-token"
PIN311 = str(Path(sys.executable).parent / "pin311")


class _TwilioApi(BaseHTTPRequestHandler):
    """What Twilio's Messages API would receive: POST /2010-04-01/Accounts/<sid>/Messages.json.

    `refuse` maps a number to the HTTP status Twilio answers for it (400: not a valid phone number,
    503: an outage), as Twilio's error JSON."""
    received = []
    refuse = {}

    def do_GET(self):   # the message log: GET …/Messages.json?To=…
        query = parse_qs(self.path.split("?", 1)[1]) if "?" in self.path else {}
        to = query.get("To", [None])[0]
        found = [{"sid": f"SM{i + 1:032d}", "to": m["To"], "from": m["From"], "body": m["Body"], "status": "sent",
                  "date_sent": "Tue, 24 Nov 2026 08:00:00 +0000"}
                 for i, m in enumerate(_TwilioApi.received) if to is None or m["To"] == to]
        answer = json.dumps({"messages": found, "page": 0, "page_size": 100, "next_page_uri": None,
                             "uri": self.path, "first_page_uri": self.path, "previous_page_uri": None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer)

    def do_POST(self):
        body = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        to = body["To"][0]
        status = _TwilioApi.refuse.get(to)
        if status:
            code, message = (20500, "Unavailable") if status >= 500 else \
                (21211, f"The 'To' number {to} is not a valid phone number.")
            answer = json.dumps({"code": code, "message": message, "status": status,
                                 "more_info": f"https://www.twilio.com/docs/errors/{code}"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer)
            return
        _TwilioApi.received.append({k: v[0] for k, v in body.items()})
        answer = json.dumps({"sid": f"SM{len(_TwilioApi.received):032d}", "status": "queued",
                             "to": body["To"][0], "body": body["Body"][0]}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


class _Mailbox:
    """An SMTP server's inbox; it refuses the recipients in `refuse` as a server refuses an unknown user."""

    def __init__(self):
        self.messages = []
        self.refuse = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def outside_world(monkeypatch):
    _TwilioApi.received, _TwilioApi.refuse = [], {}
    twilio = ThreadingHTTPServer(("127.0.0.1", 0), _TwilioApi)
    threading.Thread(target=twilio.serve_forever, daemon=True).start()
    mailbox = _Mailbox()
    import socket
    with socket.socket() as probe:   # aiosmtpd checks its port itself, so it needs a real one
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    env = {"PIN311_TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "PIN311_TWILIO_AUTH_TOKEN": TOKEN,
           "PIN311_SMS_FROM": "+16175550311", "PIN311_TWILIO_API_BASE": f"http://127.0.0.1:{twilio.server_port}",
           "PIN311_SMTP_HOST": "127.0.0.1", "PIN311_SMTP_PORT": str(smtp_port)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env, mailbox
    smtp.stop()
    twilio.shutdown()


def _drain(engine):
    senders = notify.senders_from_env()
    while notify.run_once(engine, senders):
        pass


def _ticket(conn, **contact):
    return intake.submit_request(conn, intake.NewRequest(
        service_code="animal-generic", lat=42.3345, lon=-71.0398, attributes={"animal_type": "dog"},
        contact=contact, channel="agent", actor="agent:test"))


def test_callers_hear_created_and_closed_by_sms_and_email_once(conn, engine, outside_world):
    env, mailbox = outside_world
    ticket = _ticket(conn, phone="+1 617 555 0142", email="caller@example.org")
    _drain(engine)
    lifecycle.apply(conn, ticket["id"], "close", "crew:test", reason="fixed", public_note="Dog returned home.")
    _drain(engine)
    _drain(engine)   # nothing is sent twice
    texts = [m for m in _TwilioApi.received if m["To"] == "+16175550142"]
    assert len(texts) == 2
    assert ticket["public_id"] in texts[0]["Body"] and "received" in texts[0]["Body"]
    assert "closed" in texts[1]["Body"] and "Dog returned home." in texts[1]["Body"]
    assert all(m["From"] == env["PIN311_SMS_FROM"] for m in texts)
    mails = [m for m in mailbox.messages if "caller@example.org" in m[0]]
    assert len(mails) == 2 and ticket["public_id"] in mails[1][1]


def test_a_stopped_phone_gets_no_texts_and_a_provider_outage_backs_off(conn, engine, outside_world, monkeypatch):
    notify.opt_out(conn, "+16175550143")
    conn.commit()
    _ticket(conn, phone="+16175550143")
    _drain(engine)
    assert not [m for m in _TwilioApi.received if m["To"] == "+16175550143"]
    monkeypatch.setenv("PIN311_TWILIO_API_BASE", "http://127.0.0.1:9")   # nothing listens there
    _ticket(conn, phone="+16175550144")
    notify.run_once(engine, notify.senders_from_env())
    row = conn.execute(text("SELECT attempts, last_error, next_try > now() AS later FROM outbox "
                            "WHERE topic = 'notify' AND done_at IS NULL ORDER BY id DESC LIMIT 1")).one()
    conn.commit()
    assert row.attempts == 1 and row.last_error and row.later


def test_a_worker_killed_mid_batch_sends_each_message_exactly_once(conn, engine, outside_world, db_url):
    env, _ = outside_world
    tickets = [_ticket(conn, phone=f"+1617555{1000 + i:04d}") for i in range(40)]
    slow = {**os.environ, **env, "DATABASE_URL": db_url}
    worker = subprocess.Popen([PIN311, "worker", "--interval", "0.2"], env=slow, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while len(_TwilioApi.received) < 10 and time.time() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    again = subprocess.run([PIN311, "worker", "--once"], env=slow, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    numbers = [m["To"] for m in _TwilioApi.received if m["To"].startswith("+1617555")]
    wanted = {f"+1617555{1000 + i:04d}" for i in range(len(tickets))}
    assert set(numbers) == wanted and len(numbers) == len(wanted)


def _signed(client, path, form):
    url = f"http://localhost/channels/{path}"
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    return client.post(f"/channels/{path}", data=form, headers={"X-Twilio-Signature": signature})


def test_sms_status_report_and_forged_requests(client, conn, monkeypatch):
    monkeypatch.setenv("PIN311_TWILIO_AUTH_TOKEN", TOKEN)
    ticket = _ticket(conn)
    answer = _signed(client, "sms", {"From": "+16175550150", "Body": f"STATUS {ticket['public_id']}"})
    assert answer.status_code == 200 and "is open" in answer.get_data(as_text=True)
    asks = _signed(client, "sms", {"From": "+16175550151", "Body": "dead raccoon at 615 E Fourth St",
                                   "MessageSid": "SMtest1"}).get_data(as_text=True)
    assert "Pick up Dead Animal" in asks and "How big is the animal?" in asks and "2 Medium" in asks
    wrong = _signed(client, "sms", {"From": "+16175550151", "Body": "huge", "MessageSid": "SMtest1b"})
    assert "one of the numbers" in wrong.get_data(as_text=True) and "How big" in wrong.get_data(as_text=True)
    answered = _signed(client, "sms", {"From": "+16175550151", "Body": "2", "MessageSid": "SMtest1c"})
    assert "Pick up Dead Animal request" in answered.get_data(as_text=True), answered.get_data(as_text=True)
    assert "615 E Fourth St" in answered.get_data(as_text=True)      # the reply says where it was filed
    filed = conn.scalar(text("SELECT attributes FROM service_requests WHERE idempotency_key = 'sms-SMtest1c'"))
    assert filed == {"animal_size": "medium"}
    again = _signed(client, "sms", {"From": "+16175550151", "Body": "2", "MessageSid": "SMtest1c"})   # Twilio retry
    assert "was created" in again.get_data(as_text=True)
    assert conn.scalar(text("SELECT count(*) FROM service_requests WHERE idempotency_key LIKE 'sms-SMtest1%'")) == 1
    made = _signed(client, "sms", {"From": "+16175550151", "Body": "full trash can at 615 E Fourth St",
                                   "MessageSid": "SMtest2"}).get_data(as_text=True)
    assert "Empty Litter Basket request" in made and "was created" in made
    row = conn.execute(text("SELECT r.channel, c.phone FROM service_requests r JOIN contacts c ON c.request_id = r.id "
                            "WHERE r.idempotency_key = 'sms-SMtest2'")).one()
    assert row.channel == "sms" and row.phone == "+16175550151"
    outside = _signed(client, "sms", {"From": "+16175550151", "Body": "full trash can at 99999 Nowhere Blvd",
                                      "MessageSid": "SMtest3"}).get_data(as_text=True)
    assert "could not" in outside
    vague = _signed(client, "sms", {"From": "+16175550151", "Body": "help"}).get_data(as_text=True)
    assert "what and where" in vague
    stop = _signed(client, "sms", {"From": "+16175550152", "Body": "STOP"})
    assert "no more texts" in stop.get_data(as_text=True)
    assert conn.scalar(text("SELECT count(*) FROM sms_optouts WHERE phone = '+16175550152'")) == 1
    forged = client.post("/channels/sms", data={"From": "+1", "Body": "STOP"},
                         headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
    assert forged.status_code == 403
    assert client.post("/channels/sms", data={"Body": "STOP"}).status_code == 403


def test_sms_reports_by_latitude_longitude_and_answers_a_texter_can_act_on(client, conn, monkeypatch):
    """A phone shares a spot as "lat, long"; refusals say what to text next, not "drop a pin"."""
    monkeypatch.setenv("PIN311_TWILIO_AUTH_TOKEN", TOKEN)

    def text_(body, sid):
        answer = _signed(client, "sms", {"From": "+16175550153", "Body": body, "MessageSid": sid})
        return answer.get_data(as_text=True)
    made = text_("full trash can at 42.3345, -71.0398", "SMcoord1")
    assert "was created" in made, made
    row = conn.execute(text("SELECT ST_Y(geom) AS lat, ST_X(geom) AS lon, channel, districts "
                            "FROM service_requests WHERE idempotency_key = 'sms-SMcoord1'")).one()
    assert (row.lat, row.lon, row.channel) == (pytest.approx(42.3345), pytest.approx(-71.0398), "sms")
    assert row.districts["police_districts"]["code"] == "C6"
    assert "outside the city" in text_("full trash can at geo:42.3736,-71.1097", "SMcoord2")
    # a category with a required question: the place is checked before anything is asked
    assert "outside the city" in text_("dead raccoon at 42.3736, -71.1097", "SMcoord2b")
    assert "How big" in text_("dead raccoon at 42.3345, -71.0398", "SMcoord2c")
    conn.execute(text("UPDATE sms_conversations SET updated_at = now() - interval '2 hours' "
                      "WHERE phone = '+16175550153'"))
    conn.commit()
    assert "what and where" in text_("2", "SMcoord2d")          # an hour later the question is forgotten
    not_found = text_("full trash can at 1350 Massachusetts Ave, Cambridge", "SMcoord3")
    assert "could not find '1350 Massachusetts Ave, Cambridge'" in not_found and "pin" not in not_found
    two = text_("full trash can at 100 Tremont St", "SMcoord4")
    assert "Brighton" in two and "02108" in two and "neighbourhood" in two
    made = conn.scalar(text("SELECT count(*) FROM service_requests WHERE idempotency_key LIKE 'sms-SMcoord%'"))
    assert made == 1


def test_voice_menu_status_by_keypad_and_screen_pop(client, conn, monkeypatch):
    monkeypatch.setenv("PIN311_TWILIO_AUTH_TOKEN", TOKEN)
    ticket = _ticket(conn)
    menu = _signed(client, "voice", {"From": "+16175550142"}).get_data(as_text=True)
    assert "<Gather" in menu and "press 1" in menu
    assert "<Gather" in _signed(client, "voice/menu", {"From": "+16175550142", "Digits": "1"}).get_data(as_text=True)
    status = _signed(client, "voice/status", {"From": "+16175550142", "Digits": ticket["public_id"] + "#"})
    assert f"Request {' '.join(ticket['public_id'])}" in status.get_data(as_text=True)
    asked = ET.fromstring(_signed(client, "voice/menu", {"From": "+16175550142", "Digits": "1"}).get_data(as_text=True))
    assert [el.tag for el in asked] == ["Gather", "Say", "Redirect"]      # no key pressed: back to the menu
    # without TaskRouter: a named queue, which Twilio accepts (a <Task> without a workflowSid it does not)
    monkeypatch.delenv("PIN311_TWILIO_WORKFLOW_SID", raising=False)
    plain = ET.fromstring(_signed(client, "voice/menu", {"From": "+16175550142", "Digits": "2"}).get_data(as_text=True))
    enqueue = plain.find("Enqueue")
    assert enqueue.text == "311" and enqueue.find("Task") is None and "workflowSid" not in enqueue.attrib
    monkeypatch.setenv("PIN311_TWILIO_WORKFLOW_SID", "WW" + "0" * 32)
    queued = _signed(client, "voice/menu", {"From": "+16175550142", "Digits": "2"}).get_data(as_text=True)
    flex = ET.fromstring(queued).find("Enqueue")
    assert flex.get("workflowSid") == "WW" + "0" * 32 and "/agent/call?from=%2B16175550142" in flex.find("Task").text


def test_an_email_cut_off_before_its_commit_is_sent_again_with_the_same_message_id(conn, engine, outside_world):
    """SMTP has no log to ask: a delivery left 'sending' is re-sent, and the Message-ID lets the mail
    store collapse the repeat (the first hand-over is simulated by sending the delivery row's message)."""
    _, mailbox = outside_world
    _ticket(conn, email="cut-off@example.org")
    event_id = conn.scalar(text("SELECT max(id) FROM request_events"))
    contact_id = conn.scalar(text("SELECT id FROM contacts WHERE email = 'cut-off@example.org'"))
    # a worker claimed the delivery and handed the message over, then died before marking it sent
    delivery = conn.scalar(text("INSERT INTO notifications (event_id, contact_id, channel) "
                                "VALUES (:e, :c, 'email') RETURNING id"), {"e": event_id, "c": contact_id})
    conn.commit()
    notify.senders_from_env()["email"].send("cut-off@example.org", "311 request", "first try", delivery)
    _drain(engine)
    _drain(engine)
    mails = [m[1] for m in mailbox.messages if "cut-off@example.org" in m[0]]
    ids = {re.search(r"^Message-ID: (.+)$", m, re.M | re.I).group(1).strip() for m in mails}
    assert len(mails) == 2 and len(ids) == 1, (len(mails), ids)
    status = conn.scalar(text("SELECT status FROM notifications WHERE id = :id"), {"id": delivery})
    assert status == "sent"


# --- deliveries one by one: a refused address, a duplicate caller or an unconfigured channel never costs
# another caller their message, and nothing is sent twice or lost

def _texts(to, word=""):
    return [m["Body"] for m in _TwilioApi.received if m["To"] == to and word in m["Body"]]


def _mails(mailbox, to, word=""):
    return [m for rcpts, m in mailbox.messages if to in rcpts and word in m]


def _mail_texts(mailbox, to):
    """The bodies of the e-mails to `to` as a reader sees them (long lines come quoted-printable)."""
    return [message_from_string(m, policy=email_policy).get_content().strip()
            for rcpts, m in mailbox.messages if to in rcpts]


def _outbox(conn, request_id):
    rows = conn.execute(text("SELECT done_at IS NOT NULL AS done, attempts, last_error, next_try > now() AS later "
                             "FROM outbox WHERE topic = 'notify' AND (payload->>'request_id')::bigint = :r "
                             "ORDER BY id"), {"r": request_id}).all()
    conn.commit()
    return rows


def _deliveries(conn, **where):
    column, value = next(iter(where.items()))
    rows = conn.execute(text(f"SELECT n.channel, n.status, n.provider_id FROM notifications n "
                             f"JOIN contacts c ON c.id = n.contact_id WHERE c.{column} = :v ORDER BY n.id"),
                        {"v": value}).all()
    conn.commit()
    return rows


def _contact(conn, request_id, phone=None, email=None):
    """A contact row as older versions wrote them: no normalising, no check for one already there; on the
    request since it was made (so it hears every event, its first one included)."""
    conn.execute(text("INSERT INTO contacts (request_id, phone, email, created_at) "
                      "SELECT :r, :p, :e, requested_at FROM service_requests WHERE id = :r"),
                 {"r": request_id, "p": phone, "e": email})
    conn.commit()


def test_a_refused_number_is_failed_once_and_the_other_callers_still_hear(conn, engine, outside_world):
    _, mailbox = outside_world
    ticket = _ticket(conn)
    _contact(conn, ticket["id"], phone="+5550150")          # an old 7-digit number: Twilio answers 400
    _TwilioApi.refuse["+5550150"] = 400
    _contact(conn, ticket["id"], phone="+16175550161", email="second@example.org")
    lifecycle.apply(conn, ticket["id"], "close", "crew:test", reason="fixed")
    _drain(engine)
    assert len(_texts("+16175550161", "closed")) == 1 and len(_mails(mailbox, "second@example.org", "closed")) == 1
    assert all(row.done for row in _outbox(conn, ticket["id"]))        # nothing left to retry forever
    refused = _deliveries(conn, phone="+5550150")
    assert [(d.channel, d.status) for d in refused] == [("sms", "skipped")]
    assert all("refused" in d.provider_id and "400" in d.provider_id for d in refused)
    _drain(engine)
    assert not [m for m in _TwilioApi.received if m["To"] == "+5550150"]


def test_a_refused_mailbox_is_failed_and_an_outage_is_retried_until_it_is_sent_once(conn, engine, outside_world):
    _, mailbox = outside_world
    mailbox.refuse.add("gone@example.org")
    ticket = _ticket(conn, phone="+16175550162", email="gone@example.org")
    _contact(conn, ticket["id"], phone="+16175550163")
    _TwilioApi.refuse["+16175550163"] = 503                  # Twilio is down for this one, for now
    _drain(engine)
    assert len(_texts("+16175550162", "received")) == 1 and not _texts("+16175550163")
    assert [d.status for d in _deliveries(conn, email="gone@example.org") if d.channel == "email"] == ["skipped"]
    row, = _outbox(conn, ticket["id"])
    assert not row.done and row.later and row.attempts == 1 and "503" in row.last_error
    del _TwilioApi.refuse["+16175550163"]
    conn.execute(text("UPDATE outbox SET next_try = now() WHERE topic = 'notify' AND done_at IS NULL"))
    conn.commit()
    _drain(engine)
    _drain(engine)
    assert len(_texts("+16175550163", "received")) == 1 and len(_texts("+16175550162")) == 1
    assert not _mails(mailbox, "gone@example.org")
    assert _outbox(conn, ticket["id"])[0].done


def test_attaching_the_same_caller_twice_keeps_one_contact(conn):
    ticket = _ticket(conn, phone="+16175550300")
    for phone, email in (("+16175550301", None), ("(617) 555-0301", None),
                         (None, "Twice@Example.org"), (None, "twice@example.org"), ("617 555 0300", None)):
        lifecycle.attach_caller(conn, ticket["id"], {"phone": phone, "email": email}, "agent:test")
    contacts = conn.execute(text("SELECT phone, email FROM contacts WHERE request_id = :r ORDER BY id"),
                            {"r": ticket["id"]}).all()
    assert [tuple(c) for c in contacts] == [("+16175550300", None), ("+16175550301", None),
                                            (None, "Twice@Example.org")]


def test_duplicate_contact_rows_get_one_message_per_address(conn, engine, outside_world):
    _, mailbox = outside_world
    ticket = _ticket(conn, phone="+16175550302", email="dup@example.org")
    _contact(conn, ticket["id"], phone="+16175550302")
    _contact(conn, ticket["id"], email="DUP@example.org")
    _drain(engine)
    lifecycle.apply(conn, ticket["id"], "close", "crew:test", reason="fixed")
    _drain(engine)
    assert len(_texts("+16175550302", "received")) == 1 and len(_texts("+16175550302", "closed")) == 1
    mails = [m for rcpts, m in mailbox.messages if any(r.lower() == "dup@example.org" for r in rcpts)]
    assert len(mails) == 2


def test_an_unconfigured_channel_waits_without_spinning_and_sends_once_configured(conn, engine, outside_world):
    _, mailbox = outside_world
    ticket = _ticket(conn, phone="+16175550304", email="waits@example.org")
    email_only = {"email": notify.senders_from_env()["email"]}
    notify.run_once(engine, email_only)
    assert len(_mails(mailbox, "waits@example.org")) == 1 and not _texts("+16175550304")
    assert [d.channel for d in _deliveries(conn, phone="+16175550304")] == ["email"]   # no sms row 'skipped'
    row, = _outbox(conn, ticket["id"])
    assert not row.done and row.later and "sms" in row.last_error and "not configured" in row.last_error
    assert notify.run_once(engine, email_only) == 0 and _outbox(conn, ticket["id"])[0].attempts == 1
    _drain(engine)                    # a worker started with SMS configured sends what waited for it
    assert len(_texts("+16175550304", "received")) == 1 and len(_mails(mailbox, "waits@example.org")) == 1
    assert _outbox(conn, ticket["id"])[0].done


def test_an_attached_caller_alone_gets_a_confirmation_with_the_number(conn, engine, outside_world):
    _, mailbox = outside_world
    ticket = _ticket(conn, phone="+16175550305")
    _drain(engine)
    lifecycle.attach_caller(conn, ticket["public_id"], {"phone": "617 555 0306", "email": "joined@example.org"},
                            "agent:test")
    lifecycle.attach_caller(conn, ticket["public_id"], {"phone": "617 555 0306"}, "agent:test")   # again
    _drain(engine)
    confirmations = _texts("+16175550306")
    assert len(confirmations) == 1 and ticket["public_id"] in confirmations[0] and "added" in confirmations[0]
    assert len(_mails(mailbox, "joined@example.org", ticket["public_id"])) == 1
    assert len(_texts("+16175550305")) == 1                 # the first caller: only their own 'received'
    # closed before the worker came round: the closure's message is the news, not a stale confirmation
    lifecycle.attach_caller(conn, ticket["public_id"], {"phone": "617 555 0307"}, "agent:test")
    lifecycle.apply(conn, ticket["id"], "close", "crew:test", reason="fixed")
    _drain(engine)
    assert [("closed" in t, "added" in t) for t in _texts("+16175550307")] == [(True, False)]


def test_emails_leave_out_the_texts_reply_and_stop_line(conn, engine, outside_world, monkeypatch):
    """'Reply STATUS … STOP to stop texts' means something only in a text; an e-mail gives the status page
    instead, when the site's public address is set."""
    _, mailbox = outside_world
    ticket = _ticket(conn, phone="+16175550310", email="both@example.org")
    _drain(engine)
    lifecycle.attach_caller(conn, ticket["id"], {"email": "joined-later@example.org"}, "agent:test")
    _drain(engine)
    number = ticket["public_id"]
    assert _texts("+16175550310") == [f"Boston 311: we received your request {number} (Animal Generic Request). "
                                      f"Reply STATUS {number} any time; STOP to stop texts."]
    mails = _mail_texts(mailbox, "both@example.org") + _mail_texts(mailbox, "joined-later@example.org")
    assert mails == [f"Boston 311: we received your request {number} (Animal Generic Request).",
                     f"Boston 311: your report was added to request {number} (Animal Generic Request), which is "
                     "open. We will tell you when it changes."]
    monkeypatch.setenv("PIN311_PUBLIC_URL", "https://311.example.org")
    later = _ticket(conn, phone="+16175550311", email="linked@example.org")
    _drain(engine)
    assert _mail_texts(mailbox, "linked@example.org") == [
        f"Boston 311: we received your request {later['public_id']} (Animal Generic Request). "
        f"Its status: https://311.example.org/requests/{later['public_id']}"]
    assert _texts("+16175550311")[0].endswith(f"Reply STATUS {later['public_id']} any time; STOP to stop texts.")


def test_a_caller_attached_before_the_worker_runs_hears_only_that_they_were_added(conn, engine, outside_world):
    ticket = _ticket(conn, phone="+16175550320")
    lifecycle.attach_caller(conn, ticket["public_id"], {"phone": "617 555 0321"}, "agent:test")
    _drain(engine)                                            # the worker comes round after both
    assert len(_texts("+16175550320", "received")) == 1
    later = _texts("+16175550321")
    assert len(later) == 1 and "added" in later[0] and "received" not in later[0]
