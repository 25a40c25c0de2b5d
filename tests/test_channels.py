"""The SMS and voice webhooks (Twilio, signatures checked): STATUS by text, a report as a short conversation,
by latitude/longitude too, refusals a texter can act on, STOP; the voice menu, status by keypad, the screen-pop."""
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import text

from tests.notify_fixtures import TOKEN, _signed, _ticket


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
