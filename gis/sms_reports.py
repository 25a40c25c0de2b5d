"""Reports by text message, as a short conversation: "what at where", then the category's required questions.

The place is settled first (found, inside the city), so nobody answers questions about a report that
cannot be taken. Then each required question is asked in turn ("How big is the animal? Reply 1 small,
2 medium, 3 large"); the last answer files the report through the one intake path (gis.intake), with
the place as found. The waiting report is one row per phone in sms_conversations (migration 0014); a new
"what at where" text replaces it, and it is forgotten after an hour.
"""
import json

from sqlalchemy import text

from gis import intake
from gis.errors import InvalidAttribute, OutsideJurisdiction
from gis.locate import check_point, locate_point
from gis.services import catalogue, check_answer, number_rule

FORGET_AFTER = "1 hour"


def place(conn, where):
    """(lat, lon, address_id) for a texted place — "615 E Fourth St" or "42.33, -71.04"; raises the
    intake's errors (AddressNotFound, AmbiguousAddress, OutsideJurisdiction, InvalidLocation)."""
    if isinstance(where, tuple):
        lat, lon, address_id = *check_point(*where), None
    else:
        lat, lon, _, address_id, _ = intake.place(conn, intake.NewRequest(service_code="", address=where))
    if not locate_point(conn, lat, lon).inside:
        raise OutsideJurisdiction("that place is outside the city; 311 takes reports inside the city only")
    return lat, lon, address_id


def start(conn, phone, service, where, body, message_sid):
    """A new report: filed at once when the category asks nothing required, else its first question."""
    lat, lon, address_id = place(conn, where)
    questions = _required(service)
    if not questions:
        forget(conn, phone)                 # a report waiting for answers is replaced by this one
        return _file(conn, phone, service, lat, lon, address_id, body, {}, message_sid)
    params = {"phone": phone, "svc": service.code, "lat": lat, "lon": lon, "aid": address_id, "body": body,
              "asking": questions[0]["code"], "sid": message_sid}
    conn.execute(text("""
        INSERT INTO sms_conversations (phone, service_code, lat, lon, address_id, body, asking, last_message_sid)
        VALUES (:phone, :svc, :lat, :lon, :aid, :body, :asking, :sid)
        ON CONFLICT (phone) DO UPDATE SET service_code = EXCLUDED.service_code, lat = EXCLUDED.lat,
            lon = EXCLUDED.lon, address_id = EXCLUDED.address_id, body = EXCLUDED.body, answers = '{}'::jsonb,
            asking = EXCLUDED.asking, last_message_sid = EXCLUDED.last_message_sid, updated_at = now()"""), params)
    conn.commit()
    return f"{service.name}: {prompt(questions[0])}"


def waiting(conn, phone):
    """The phone's report waiting for an answer, or None (none, or older than an hour)."""
    row = conn.execute(text(f"""SELECT * FROM sms_conversations WHERE phone = :p
                                 AND updated_at > now() - interval '{FORGET_AFTER}'"""), {"p": phone}).first()
    conn.rollback()
    return row


def answer(conn, convo, reply_text, message_sid):
    """Take the texted answer to the question asked; the reply: the next question, or the report filed."""
    service = catalogue.get(conn, convo.service_code)
    questions = _required(service)
    asked = next((q for q in questions if q["code"] == convo.asking), None)
    if asked is None:                                   # the catalogue changed meanwhile: start again
        forget(conn, convo.phone)
        return "That report's questions have changed; please text the report again."
    if message_sid and message_sid == convo.last_message_sid:     # Twilio retried the text we already took
        return prompt(asked)
    try:
        value = parse(asked, reply_text)
    except InvalidAttribute as exc:
        return f"{exc.message}. {prompt(asked)}"
    answers = {**convo.answers, asked["code"]: value}
    rest = [q for q in questions if q["code"] not in answers]
    if rest:
        conn.execute(text("""UPDATE sms_conversations SET answers = CAST(:a AS jsonb), asking = :q,
                                    last_message_sid = :sid, updated_at = now() WHERE phone = :p"""),
                     {"a": json.dumps(answers), "q": rest[0]["code"], "sid": message_sid, "p": convo.phone})
        conn.commit()
        return prompt(rest[0])
    reply = _file(conn, convo.phone, service, convo.lat, convo.lon, convo.address_id, convo.body, answers,
                  message_sid)
    forget(conn, convo.phone)
    return reply


def forget(conn, phone):
    conn.execute(text("DELETE FROM sms_conversations WHERE phone = :p"), {"p": phone})
    conn.commit()


def prompt(question):
    """The question as a text: list answers are numbered, so a texter can reply with one digit."""
    ask = question.get("description") or question["code"]
    values = question.get("values") or []
    if question.get("datatype") in ("singlevaluelist", "multivaluelist") and values:
        listed = ", ".join(f"{i} {v.get('name') or v['key']}" for i, v in enumerate(values, 1))
        many = " (one or more, e.g. 1,3)" if question["datatype"] == "multivaluelist" else ""
        return f"{ask} Reply {listed}{many}."
    if question.get("datatype") == "number":
        return f"{ask} Reply with {number_rule(question)}."
    return f"{ask} Reply with your answer."


def parse(question, reply_text):
    """The answer as the intake takes it: list answers by number, key or name; checked like any other."""
    raw = (reply_text or "").strip()
    values = question.get("values") or []
    if question.get("datatype") in ("singlevaluelist", "multivaluelist") and values:
        picked = [_pick(values, part) for part in raw.replace(";", ",").split(",") if part.strip()]
        if not picked or None in picked:
            raise InvalidAttribute("Please answer with one of the numbers")
        if question["datatype"] == "singlevaluelist":
            if len(picked) != 1:
                raise InvalidAttribute("Please answer with just one number")
            raw = picked[0]
        else:
            raw = picked
    if question.get("datatype") == "number":
        try:
            return check_answer(question, raw)
        except InvalidAttribute:      # the reply re-asks the question, with its range: say it once
            raise InvalidAttribute(f"{raw[:20] or 'That'} is not {number_rule(question)}") from None
    return check_answer(question, raw)


def _pick(values, part):
    part = part.strip().lower()
    if part.isdigit() and 1 <= int(part) <= len(values):
        return str(values[int(part) - 1]["key"])
    for v in values:
        if part in (str(v["key"]).lower(), str(v.get("name") or "").lower()):
            return str(v["key"])
    return None


def _required(service):
    return [a for a in service.attributes if a.get("required") and a.get("variable", True)]


def idempotency_key(message_sid):
    """The intake key of the report a text files: a retried text (same MessageSid) finds it again."""
    return f"sms-{message_sid[:64]}" if message_sid else None


def filed(ticket):
    """What the texter is told once the report is filed (and again when Twilio retries that text)."""
    where = f" at {ticket['address']}" if ticket.get("address") else ""
    return (f"Thank you: {ticket['service_name']} request {ticket['public_id']}{where} was created. "
            f"Reply STATUS {ticket['public_id']}.")


def _file(conn, phone, service, lat, lon, address_id, body, answers, message_sid):
    return filed(intake.submit_request(conn, intake.NewRequest(
        service_code=service.code, lat=lat, lon=lon, address_id=address_id, description=body,
        attributes=answers, contact={"phone": phone}, channel="sms", actor=f"sms:{phone}", public_only=True,
        idempotency_key=idempotency_key(message_sid))))
