"""The service catalogue, crews and routing rules, loaded from plain files (YAML / CSV) in data/."""
import csv
import json
from pathlib import Path

import yaml
from sqlalchemy import text

from gis.errors import InvalidInput
from gis.models import STRATEGIES
from gis.services import check_bounds

DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")


def _check_service(s):
    for key in ("code", "name"):
        if not s.get(key):
            raise InvalidInput(f"service without {key}: {s}")
    for a in s.get("attributes") or []:
        if a.get("datatype") not in DATATYPES:
            raise InvalidInput(f"service {s['code']}: attribute {a.get('code')} has datatype {a.get('datatype')!r}")
        if a["datatype"].endswith("valuelist") and not a.get("values"):
            raise InvalidInput(f"service {s['code']}: attribute {a['code']} lists no values")
        try:
            check_bounds(a)
        except ValueError as exc:
            raise InvalidInput(f"service {s['code']}: attribute {a['code']}: {exc}") from None


def load_crews(conn, path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        lat, lon = (r.get("lat") or "").strip(), (r.get("lon") or "").strip()
        conn.execute(text("""
            INSERT INTO crews (code, name, department, contact, on_duty, last_position)
            VALUES (:code, :name, :dept, :contact, :on_duty,
                    ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), 4326))
            ON CONFLICT (code) DO UPDATE SET name = excluded.name, department = excluded.department,
                contact = excluded.contact, on_duty = excluded.on_duty,
                last_position = coalesce(crews.last_position, excluded.last_position)"""),
                     {"code": r["code"].strip(), "name": r["name"].strip(), "dept": r.get("department"),
                      "contact": r.get("contact"),
                      "on_duty": (r.get("on_duty") or "true").strip().lower() in ("1", "true", "yes"),
                      "lat": float(lat) if lat and lon else None, "lon": float(lon) if lat and lon else None})
    return len(rows)


def load_services(conn, path):
    services = yaml.safe_load(Path(path).read_text())
    for s in services:
        _check_service(s)
        crew = s.get("default_crew")
        crew_id = None
        if crew:
            crew_id = conn.scalar(text("SELECT id FROM crews WHERE code = :c"), {"c": crew})
            if crew_id is None:
                raise InvalidInput(f"service {s['code']}: default_crew {crew!r} is not a crew")
        conn.execute(text("""
            INSERT INTO services (code, name, group_name, department, description, keywords, attributes,
                                  sla_hours, public, sensitive, active, default_crew_id, updated_at)
            VALUES (:code, :name, :group, :dept, :descr, :kw, CAST(:attrs AS jsonb), :sla, :public, :sensitive,
                    true, :crew, now())
            ON CONFLICT (code) DO UPDATE SET name = excluded.name, group_name = excluded.group_name,
                department = excluded.department, description = excluded.description,
                keywords = excluded.keywords, attributes = excluded.attributes, sla_hours = excluded.sla_hours,
                public = excluded.public, sensitive = excluded.sensitive, active = true,
                default_crew_id = excluded.default_crew_id, updated_at = now()"""),
                     {"code": s["code"], "name": s["name"], "group": s.get("group"), "dept": s.get("department"),
                      "descr": s.get("description"), "kw": [str(k).lower() for k in s.get("keywords") or []],
                      "attrs": json.dumps(s.get("attributes") or []), "sla": s.get("sla_hours"),
                      "public": bool(s.get("public", True)), "sensitive": bool(s.get("sensitive", False)),
                      "crew": crew_id})
    return len(services)


def load_rules(conn, path):
    """Replace all routing rules with the file's (rules are configuration, not history)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    conn.execute(text("DELETE FROM routing_rules"))
    for n, r in enumerate(rows, start=2):
        strategy = r["strategy"].strip()
        if strategy not in STRATEGIES:
            raise InvalidInput(f"{path}:{n}: strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
        crew_id = None
        if (r.get("crew_code") or "").strip():
            crew_id = conn.scalar(text("SELECT id FROM crews WHERE code = :c"), {"c": r["crew_code"].strip()})
            if crew_id is None:
                raise InvalidInput(f"{path}:{n}: crew {r['crew_code']!r} is not a crew")
        conn.execute(text("""
            INSERT INTO routing_rules (service_code, strategy, layer, district_code, attribute, value,
                                       crew_id, priority)
            VALUES (:s, :st, :layer, :dc, :attr, :val, :crew, :prio)"""),
                     {"s": r["service_code"].strip(), "st": strategy,
                      "layer": (r.get("layer") or "").strip() or None,
                      "dc": (r.get("district_code") or "").strip() or None,
                      "attr": (r.get("attribute") or "").strip() or None,
                      "val": (r.get("value") or "").strip() or None, "crew": crew_id,
                      "prio": int(r.get("priority") or 100)})
    return len(rows)


def load_all(conn, data_dir):
    data_dir = Path(data_dir)
    crews = load_crews(conn, data_dir / "crews.csv")
    services = load_services(conn, data_dir / "services.yaml")
    rules = load_rules(conn, data_dir / "routing_rules.csv")
    return f"catalogue: {services} services, {crews} crews, {rules} routing rules"
