"""Deliveries one by one: a refused address, a duplicate caller or an unconfigured channel never costs another
caller their message, and nothing is sent twice or lost."""
from sqlalchemy import text

from gis import lifecycle, notify
from tests.notify_fixtures import _TwilioApi, _drain, _mails, _texts, _ticket
from tests.notify_fixtures import outside_world  # noqa: F401  (fixtures)


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
