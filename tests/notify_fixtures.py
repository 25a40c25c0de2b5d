"""What the notification and channel tests share: local stand-ins for Twilio's Messages API and an SMTP server
(`outside_world`), a worker drained in-process, tickets with callers, signed Twilio webhooks, what was sent."""
import json
import sys
import threading
from email import message_from_string
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from twilio.request_validator import RequestValidator

from gis import intake, notify


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


def _signed(client, path, form):
    url = f"http://localhost/channels/{path}"
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    return client.post(f"/channels/{path}", data=form, headers={"X-Twilio-Signature": signature})


def _texts(to, word=""):
    return [m["Body"] for m in _TwilioApi.received if m["To"] == to and word in m["Body"]]


def _mails(mailbox, to, word=""):
    return [m for rcpts, m in mailbox.messages if to in rcpts and word in m]


def _mail_texts(mailbox, to):
    """The bodies of the e-mails to `to` as a reader sees them (long lines come quoted-printable)."""
    return [message_from_string(m, policy=email_policy).get_content().strip()
            for rcpts, m in mailbox.messages if to in rcpts]
