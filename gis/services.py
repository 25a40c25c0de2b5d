"""Reading the service catalogue, and validating a request's attribute answers against it."""
import math
import time
import weakref
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from gis.errors import InvalidAttribute, UnknownService

STRING_MAX = 255
TEXT_MAX = 4000


@dataclass(frozen=True)
class Service:
    code: str
    name: str
    group: str | None
    department: str | None
    description: str | None
    keywords: tuple
    attributes: tuple      # Open311 attribute definitions (dicts), in `order`
    sla_hours: int | None
    public: bool
    sensitive: bool
    default_crew_id: int | None

    def as_open311(self):
        return {"service_code": self.code, "service_name": self.name, "description": self.description or "",
                "metadata": bool(self.attributes), "type": "realtime", "keywords": ", ".join(self.keywords),
                "group": self.group or ""}


class Catalogue:
    """The active services, re-read at most every `ttl` seconds.

    Intake validates every request against the catalogue; re-reading it each time would add a
    round-trip to the hot path. A short TTL keeps workers consistent with admin edits without any
    state shared between processes.
    """

    def __init__(self, ttl=10.0):
        self.ttl = ttl
        self._by_database = weakref.WeakKeyDictionary()   # engine -> (monotonic time loaded, {code: Service})

    def clear(self):
        self._by_database.clear()

    def all(self, conn):
        # Keyed by engine, so by database: a process that talks to two databases (a tool, a test) must not
        # answer one with the other's catalogue. (Not by URL: hashing one renders it as text, 0.1 ms a call.)
        where = conn.engine
        loaded_at, services = self._by_database.get(where, (-math.inf, {}))
        if time.monotonic() - loaded_at > self.ttl:
            rows = conn.execute(text(
                "SELECT code, name, group_name, department, description, keywords, attributes, sla_hours, "
                "public, sensitive, default_crew_id FROM services WHERE active ORDER BY group_name, name"))
            services = {
                r.code: Service(r.code, r.name, r.group_name, r.department, r.description, tuple(r.keywords or ()),
                                tuple(sorted(r.attributes or [], key=lambda a: a.get("order") or 0)),
                                r.sla_hours, r.public, r.sensitive, r.default_crew_id)
                for r in rows}
            self._by_database[where] = (time.monotonic(), services)
        return services

    def get(self, conn, code, public_only=False):
        service = self.all(conn).get(code) if isinstance(code, str) else None
        if service is None or (public_only and not service.public):
            raise UnknownService(f"unknown service code {str(code)[:64]!r}", field="service_code")
        return service

    def search(self, conn, words, public_only=False, limit=8):
        """Services ranked by how well `words` (what a caller says) match name, keywords and group."""
        query = [w for w in (words or "").lower().replace(",", " ").split() if w]
        phrase = " ".join(query)
        scored = []
        for s in self.all(conn).values():
            if public_only and not s.public:
                continue
            haystack = " ".join([s.name.lower(), " ".join(s.keywords), (s.group or "").lower()])
            score = sum(2 for k in s.keywords if phrase and phrase in k or k and k in phrase)
            score += sum(1 for w in query if w in haystack)
            if phrase and phrase in s.name.lower():
                score += 3
            if score or not query:
                scored.append((-score, s.name, s))
        return [s for _, _, s in sorted(scored)[:limit]]


catalogue = Catalogue()


def validate_attributes(service, values):
    """Check answers against the service's attribute definitions; returns the cleaned dict.

    `values` maps attribute code → str (or list of str for multivaluelist). Raises InvalidAttribute
    naming the first problem.
    """
    values = dict(values or {})
    known = {a["code"]: a for a in service.attributes}
    for code in values:
        if code not in known:
            raise InvalidAttribute(f"service {service.code!r} has no attribute {str(code)[:64]!r}",
                                   field=f"attribute[{str(code)[:64]}]")
    clean = {}
    for code, definition in known.items():
        if not definition.get("variable", True):
            continue
        field = f"attribute[{code}]"
        raw = values.get(code)
        empty = raw is None or raw == "" or raw == []
        if empty:
            if definition.get("required"):
                raise InvalidAttribute(f"{definition.get('description') or code} is required", field=field)
            continue
        clean[code] = _check_value(definition, raw, field)
    return clean


def check_answer(definition, raw):
    """One answer, checked and cleaned as validate_attributes does (a question asked on its own, by text)."""
    field = f"attribute[{definition['code']}]"
    if raw is None or raw == "" or raw == []:
        raise InvalidAttribute(f"{definition.get('description') or definition['code']} is required", field=field)
    return _check_value(definition, raw, field)


def _check_value(definition, raw, field):
    kind = definition.get("datatype", "string")
    allowed = {str(v["key"]) for v in definition.get("values") or []}
    if kind == "multivaluelist":
        items = raw if isinstance(raw, (list, tuple)) else [raw]
        items = [str(i) for i in items]
        bad = [i for i in items if i not in allowed]
        if bad:
            raise InvalidAttribute(f"{bad[0][:64]!r} is not one of {', '.join(sorted(allowed))}", field=field)
        return items
    if isinstance(raw, (list, tuple)):
        if len(raw) != 1:
            raise InvalidAttribute("expects a single value", field=field)
        raw = raw[0]
    value = str(raw).strip()
    if kind == "singlevaluelist":
        if value not in allowed:
            raise InvalidAttribute(f"{value[:64]!r} is not one of {', '.join(sorted(allowed))}", field=field)
        return value
    if kind == "number":
        return _check_number(definition, value, field)
    if kind == "datetime":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
        except ValueError:
            raise InvalidAttribute(f"{value[:64]!r} is not an ISO 8601 date/time", field=field) from None
    limit = TEXT_MAX if kind == "text" else STRING_MAX
    if len(value) > limit:
        raise InvalidAttribute(f"is longer than {limit} characters", field=field)
    return value


# A number question's own fields: its bounds (min/max) and `integer: true` for a count ("how many
# animals?"), which takes whole numbers only. Ours, not Open311's: GeoReport v2 has one "number" datatype
# and no such fields, so the service definition we publish leaves them out and its datatype_description
# says the rule in words ("A whole number from 1 to 50.").
BOUNDS = ("min", "max")


def number_rule(definition):
    """What a number question accepts, in words: 'a number from 1 to 50', 'a whole number of at least 0'."""
    low, high = (definition.get(b) for b in BOUNDS)
    kind = "a whole number" if definition.get("integer") else "a number"
    if low is not None and high is not None:
        return f"{kind} from {_show(low)} to {_show(high)}"
    if low is not None:
        return f"{kind} of at least {_show(low)}"
    if high is not None:
        return f"{kind} of at most {_show(high)}"
    return kind


def check_bounds(definition):
    """Raise ValueError when a definition's number fields make no sense: min/max that are not finite numbers
    or min above max, `integer` that is not true or false, or any of them on a question that is not a number."""
    given = {b: definition[b] for b in BOUNDS if definition.get(b) is not None}
    if "integer" in definition and not isinstance(definition["integer"], bool):
        raise ValueError(f"integer must be true or false, got {definition['integer']!r}")
    ours = list(given) + (["integer"] if definition.get("integer") else [])
    if not ours:
        return
    if definition.get("datatype") != "number":
        raise ValueError(f"{'/'.join(ours)} only apply to number questions")
    for name, bound in given.items():
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
            raise ValueError(f"{name} must be a finite number, got {bound!r}")
    if len(given) == 2 and given["min"] > given["max"]:
        raise ValueError(f"min {given['min']} is above max {given['max']}")


def _check_number(definition, value, field):
    name = definition.get("description") or definition["code"]
    try:
        number = float(value)
    except ValueError:
        raise InvalidAttribute(f"{name} must be {number_rule(definition)}, not {value[:64]!r}", field=field) from None
    low, high = (definition.get(b) for b in BOUNDS)
    # NaN and infinities are never an answer, bounds or not (NaN would slip past every comparison);
    # a count takes no fractions (2.5 animals), though 2.0 is 2
    if (not math.isfinite(number) or (low is not None and number < low) or (high is not None and number > high)
            or (definition.get("integer") and not number.is_integer())):
        raise InvalidAttribute(f"{name} must be {number_rule(definition)}, not {value[:64]}", field=field)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _show(bound):
    return f"{bound:g}" if isinstance(bound, float) else str(bound)
