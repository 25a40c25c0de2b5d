"""SMS and voice webhooks (Twilio): status by text or keypad, reports by text, the voice menu.

Every webhook checks Twilio's signature with twilio's RequestValidator (PIN311_TWILIO_AUTH_TOKEN);
unsigned or forged requests get 403. Answers are TwiML built with the twilio package.
"""
import json
import os
import re
from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, request, url_for
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Enqueue, Gather, VoiceResponse

from app.extensions import csrf, db
from gis import intake, notify, sms_reports
from gis.errors import AddressNotFound, AmbiguousAddress, Pin311Error
from gis.public import status_card
from gis.services import catalogue

bp = Blueprint("channels", __name__)
csrf.exempt(bp)   # Twilio's signature replaces the CSRF token
_STATUS = re.compile(r"^\s*status\s+#?(\d{1,20})\s*$", re.I)
_AT = re.compile(r"^(?P<what>.+?)\s+(?:at|@|near)\s+(?P<where>.+)$", re.I)
# where, as a phone shares it: "42.3345, -71.0398" (or "geo:42.3345,-71.0398")
_LAT_LON = re.compile(r"^\s*(?:geo:)?\s*(?P<lat>[-+]?\d{1,3}\.\d+)\s*[,;\s]\s*"
                      r"(?P<lon>[-+]?\d{1,3}\.\d+)\s*$", re.I)


@bp.before_request
def verify_twilio_signature():
    token = os.environ.get("PIN311_TWILIO_AUTH_TOKEN")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        abort(403, "this webhook only answers signed Twilio requests")
    url = request.url
    if request.headers.get("X-Forwarded-Proto") == "https":   # behind a TLS proxy, Twilio signed the https URL
        url = "https://" + url.split("://", 1)[1]
    if not RequestValidator(token).validate(url, request.form.to_dict(), signature):
        abort(403, "bad Twilio signature")


def _twiml(response):
    return Response(str(response), mimetype="text/xml")


def _status_line(public_id, spoken=False):
    # Read aloud, "1000563" is "one million five hundred…": a voice says the number digit by digit.
    number = " ".join(public_id) if spoken else public_id
    card = status_card(db.connection(), public_id)
    if card is None:
        return f"No request {number} was found. Check the number and try again."
    state = card["status"].replace("_", " ")
    return f"Request {number} ({card['service_name']}) is {state}."


@bp.post("/sms")
def sms():
    body = (request.form.get("Body") or "").strip()[:1000]
    phone = intake.normalize_phone(request.form.get("From"))
    sid = (request.form.get("MessageSid") or "")[:64] or None
    reply = MessagingResponse()
    word = body.upper()
    conn = db.connection()
    if word in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"):
        notify.opt_out(conn, phone, stop=True)
        conn.commit()
        reply.message("You will get no more texts from 311. Reply START to receive them again.")
    elif word in ("START", "UNSTOP", "YES"):
        notify.opt_out(conn, phone, stop=False)
        conn.commit()
        reply.message("Texts from 311 are on again.")
    elif word in ("HELP", "INFO", "NEW"):
        if phone and word == "NEW":
            sms_reports.forget(conn, phone)
        reply.message("311 by text: text what and where, e.g. 'dead raccoon at 12 Main St', then answer the "
                      "questions; NEW starts over. STATUS and a number checks a request; STOP ends texts.")
    elif _STATUS.match(body):
        reply.message(_status_line(_STATUS.match(body).group(1)))
    else:
        reply.message(_report(conn, body, phone, sid))
    return _twiml(reply)


def _report(conn, body, phone, sid):
    """'dead raccoon at 12 Main St' → a request, or its first question; an answer → the next, or the request."""
    if sid:   # Twilio retries a text it got no answer to: the report it filed is the answer again
        done = intake.find_ticket(conn, idempotency_key=sms_reports.idempotency_key(sid))
        conn.rollback()
        if done:
            return sms_reports.filed(done)
    if not phone:
        return "311 takes reports by text only from a phone number it can answer. Please call 311."
    match = _AT.match(body)
    where = match.group("where").strip() if match else ""
    convo = sms_reports.waiting(conn, phone)
    try:
        if convo is not None and not match:
            return sms_reports.answer(conn, convo, body, sid)
        if not match:
            return ("To report a problem text what and where, e.g. 'dead raccoon at 12 Main St'. "
                    "To check a request text STATUS and its number.")
        found = catalogue.search(conn, match.group("what"), public_only=True, limit=1)
        if not found:
            return "We could not tell which kind of problem that is. Please call 311 or use the website."
        point = _LAT_LON.match(where)
        return sms_reports.start(conn, phone, found[0], (point["lat"], point["lon"]) if point else where,
                                 body, sid)
    except AddressNotFound:
        # the intake's own hint ("drop a pin") is for screens; a text can only say it otherwise
        city = current_app.config["CITY_NAME"]
        return (f"We could not find '{where[:80]}' in {city}. 311 takes reports inside the city only. "
                "Text the number and street again, or the spot as latitude, longitude.")
    except AmbiguousAddress as exc:
        places = "; ".join(c["address"] for c in exc.candidates[:3])
        return (f"'{where[:80]}' is in more than one place ({places}). "
                "Text the report again with the neighbourhood or ZIP code.")
    except Pin311Error as exc:
        return f"We could not take that report: {exc.message}"


@bp.post("/voice")
def voice():
    """The menu: 1 status by ticket number, 2 report (queued to an agent), 3 a person."""
    reply = VoiceResponse()
    gather = Gather(num_digits=1, action=url_for("channels.voice_menu"), method="POST", timeout=6)
    gather.say("Welcome to 311. To hear the status of a request, press 1. To report a problem, press 2. "
               "To speak to someone, press 3.")
    reply.append(gather)
    reply.redirect(url_for("channels.voice"), method="POST")
    return _twiml(reply)


@bp.post("/voice/menu")
def voice_menu():
    digit = request.form.get("Digits", "")
    reply = VoiceResponse()
    if digit == "1":
        gather = Gather(finish_on_key="#", action=url_for("channels.voice_status"), method="POST", timeout=10)
        gather.say("Please key your request number, then press the pound key.")
        reply.append(gather)
        reply.say("No number was entered.")              # the Gather timed out: back to the menu, not a hang-up
        reply.redirect(url_for("channels.voice"), method="POST")
    elif digit in ("2", "3"):
        caller = request.form.get("From", "")
        reply.say("Please hold: the next agent will take your call.")
        workflow = os.environ.get("PIN311_TWILIO_WORKFLOW_SID")
        if workflow:
            # Twilio Flex / TaskRouter hands the task to an agent; its attributes carry the screen-pop URL
            # the agent's browser opens (the console shows the caller's earlier tickets).
            enqueue = Enqueue(workflow_sid=workflow)
            enqueue.task(json.dumps({"type": "report" if digit == "2" else "agent", "from": caller,
                                     "screen_pop": f"/agent/call?from={quote(caller, safe='')}"}))
        else:
            # Without TaskRouter: a plain named queue, which the agents' phones dequeue (<Task> needs a workflow).
            enqueue = Enqueue(os.environ.get("PIN311_TWILIO_QUEUE", "311"))
        reply.append(enqueue)
    else:
        reply.say("Sorry, that is not an option.")
        reply.redirect(url_for("channels.voice"), method="POST")
    return _twiml(reply)


@bp.post("/voice/status")
def voice_status():
    digits = re.sub(r"\D", "", request.form.get("Digits", ""))[:20]
    reply = VoiceResponse()
    reply.say(_status_line(digits, spoken=True) if digits else "No number was entered.")
    reply.redirect(url_for("channels.voice"), method="POST")
    return _twiml(reply)
