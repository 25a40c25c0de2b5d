"""Open311 GeoReport v2 (/open311/v2/…): discovery, services, requests, tokens — JSON and XML.

Routes parse, call gis/ or app/open311/service.py, and render; errors come back in the spec's
`errors` format with the right HTTP status, in the format the client asked for.
"""
import secrets

from flask import Blueprint, current_app, request
from werkzeug.exceptions import HTTPException

from app.errors import retry_after_limit
from app.extensions import csrf, db, limiter
from app.open311 import service
from app.open311.render import FORMATS, render, render_errors
from gis import apikeys, intake
from gis.errors import NotFound, Pin311Error
from gis.services import catalogue

bp = Blueprint("open311", __name__)
csrf.exempt(bp)   # POST is authorised by api_key, not by a browser session
CONTACT_FIELDS = ("first_name", "last_name", "phone", "email", "device_id", "account_id")


def _fmt():
    fmt = (request.view_args or {}).get("fmt") or "json"
    return fmt if fmt in FORMATS else "json"


@bp.errorhandler(Pin311Error)
def domain_error(exc):
    status = 400 if exc.status in (409, 422) else exc.status
    return render_errors(_fmt(), status, exc.message)


@bp.errorhandler(HTTPException)
def http_error(exc):
    if exc.code == 429:   # Flask-Limiter's description is only the limit ("120 per 1 minute")
        response = render_errors(_fmt(), 429, f"too many requests (at most {exc.description}); nothing was "
                                              "saved, send it again after the Retry-After seconds")
        response.headers.update(retry_after_limit())
        return response
    return render_errors(_fmt(), exc.code, exc.description)


@bp.before_request
def check_format_and_jurisdiction():
    fmt = (request.view_args or {}).get("fmt")
    if fmt is not None and fmt not in FORMATS:
        raise NotFound("format must be .json or .xml")
    wanted = request.values.get("jurisdiction_id")
    if wanted and wanted != current_app.config["JURISDICTION_ID"]:
        raise NotFound(f"unknown jurisdiction_id {wanted[:64]!r}")


def _key_of_request():
    # The key's digest, never the key: the limiter's counters are a table anyone with database access reads.
    key = request.form.get("api_key")
    return "key:" + apikeys.digest(key[:200]) if key else request.remote_addr or "anonymous"


@bp.get("/v2/discovery.<fmt>")
def discovery(fmt):
    base = request.url_root.rstrip("/") + "/open311/v2/"
    return render("discovery", {
        "changeset": "2026-11-24T00:00:00Z",
        "contact": "311 administrators of " + current_app.config["CITY_NAME"],
        "key_service": "Ask the city for an API key (issued with `pin311 apikeys create`).",
        "endpoints": [{"specification": "http://wiki.open311.org/GeoReport_v2", "url": base,
                       "changeset": "2026-11-24T00:00:00Z", "type": "production",
                       "formats": ["text/xml", "application/json"]}],
        "extensions": [
            "page, page_size: paging of GET requests (page_size at most 1000)",
            "extensions=true: extended_attributes (detailed_status, closure_reason, districts, crew, channel, "
            "duplicate_of, public notes) — never personal data",
            "updated_after, updated_before: W3C date-times on updated_datetime",
            "lat, long, radius: requests within radius metres of a point",
            "bbox=minLon,minLat,maxLon,maxLat",
            "POST token or Idempotency-Key header: a retried POST returns the first request",
        ],
    }, fmt)


@bp.get("/v2/services.<fmt>")
def services(fmt):
    found = [s.as_open311() for s in catalogue.all(db.connection()).values() if s.public]
    return render("services", found, fmt)


@bp.get("/v2/services/<code>.<fmt>")
def service_definition(code, fmt):
    svc = catalogue.all(db.connection()).get(code)
    if svc is None or not svc.public:
        raise NotFound(f"unknown service_code {code[:64]!r}")
    attributes = [{"variable": a.get("variable", True), "code": a["code"], "datatype": a["datatype"],
                   "required": bool(a.get("required")), "datatype_description": a.get("datatype_description"),
                   "order": a.get("order"), "description": a.get("description"),
                   "values": a.get("values") or []} for a in svc.attributes]
    return render("service_definition", {"service_code": svc.code, "attributes": attributes}, fmt)


@bp.get("/v2/requests.<fmt>")
def list_requests(fmt):
    return render("service_requests", service.find_requests(db.connection(), request.args), fmt)


@bp.get("/v2/requests/<public_id>.<fmt>")
def get_request(public_id, fmt):
    found = service.get_request(db.connection(), public_id)
    if not found:
        raise NotFound(f"no service request {public_id[:32]!r}")
    return render("service_requests", found, fmt)


@bp.get("/v2/tokens/<token>.<fmt>")
def token(token, fmt):
    public_id = service.request_by_token(db.connection(), token)
    if public_id is None:
        raise NotFound("unknown token")
    return render("service_requests", [{"service_request_id": public_id, "token": token}], fmt)


def _attributes(form):
    """attribute[code]=value pairs (repeated for multivaluelist) → {code: value or [values]}."""
    found = {}
    for key in form.keys():
        if key.startswith("attribute[") and key.endswith("]"):
            values = form.getlist(key)
            code = key[len("attribute["):-1]
            if code.endswith("]["):      # attribute[code][]=a&attribute[code][]=b, the spec's multivaluelist form
                code = code[:-2]
                found[code] = [*found.get(code, []), *values]
            else:
                found[code] = values if len(values) > 1 else values[0]
    return found


@bp.post("/v2/requests.<fmt>")
@limiter.limit(lambda: current_app.config["OPEN311_POST_LIMIT"], key_func=_key_of_request)
@limiter.limit(lambda: current_app.config["OPEN311_POST_IP_LIMIT"])
def create_request(fmt):
    if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise Pin311Error("POST must be form-encoded (application/x-www-form-urlencoded)")
    form = request.form
    conn = db.connection()
    key = apikeys.verify(conn, form.get("api_key"), "open311:write")
    token = request.headers.get("Idempotency-Key") or form.get("token") or "t-" + secrets.token_urlsafe(12)
    location = {"lat": form.get("lat"), "lon": form.get("long")} if (form.get("lat") or form.get("long")) else {}
    ticket = intake.submit_request(conn, intake.NewRequest(
        service_code=form.get("service_code") or "", address=form.get("address_string"),
        address_id=form.get("address_id") or None, description=form.get("description"),
        attributes=_attributes(form), media_url=form.get("media_url"),
        contact={k: form.get(k) for k in CONTACT_FIELDS}, channel="open311", actor=f"apikey:{key.name}",
        idempotency_key=token, public_only=True, **location))
    body = [{"service_request_id": ticket["public_id"], "token": token, "service_notice": None,
             "account_id": None}]
    return render("service_requests", body, fmt, 201 if ticket["created"] else 200)
