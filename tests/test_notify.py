"""Automatic status updates (SMTP and Twilio SMS through local stand-ins): created and closed once each, a
stopped phone, an outage backed off, a worker killed mid-batch or cut off before its commit sending each
message once, what an attached caller hears and when, e-mails without the texts' reply line."""
import os
import re
import signal
import subprocess
import time

from sqlalchemy import text

from gis import lifecycle, notify
from tests.notify_fixtures import PIN311, _TwilioApi, _drain, _mail_texts, _mails, _texts, _ticket
from tests.notify_fixtures import outside_world  # noqa: F401  (fixtures)


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
