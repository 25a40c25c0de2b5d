"""`outStatistics` and `groupByFieldsForStatistics` of FeatureServer queries, as the ArcGIS REST API
documents them: checked here against the layer's own fields, computed by gis.features.statistics.
"""
import json
import re

from gis import features
from gis.errors import InvalidInput

NUMERIC_ONLY = {"sum", "avg", "stddev", "var"}
ORDERED = {"oid", "int", "string", "date"}      # what min and max take (PostgreSQL has no min(boolean))
OUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MAX_STATISTICS = 20


def field(coll, raw, param):
    """The layer's spelling of a field name (ArcGIS field names are case-insensitive)."""
    by_lower = {n.lower(): n for n in coll.fields}
    name = by_lower.get(str(raw).strip().lower())
    if name is None:
        raise InvalidInput(f"{param}: {coll.name} has no field {str(raw)[:40]!r}", field=param)
    return name


def parse(coll, out_statistics, group_by):
    """([(aggregate, field or '*', output name)], [group field]) from the two parameters; ([], []) when
    no statistics are asked for. InvalidInput for anything the layer or this service cannot answer."""
    if not out_statistics:
        if group_by:
            raise InvalidInput("groupByFieldsForStatistics needs outStatistics", field="outStatistics")
        return [], []
    try:
        asked = json.loads(out_statistics)
    except ValueError:
        raise InvalidInput("outStatistics must be a JSON array of statistic definitions",
                           field="outStatistics") from None
    if not isinstance(asked, list) or not asked or len(asked) > MAX_STATISTICS \
            or not all(isinstance(s, dict) for s in asked):
        raise InvalidInput(f"outStatistics must be a JSON array of 1 to {MAX_STATISTICS} statistic definitions",
                           field="outStatistics")
    stats = [_statistic(coll, s) for s in asked]
    groups = [field(coll, n, "groupByFieldsForStatistics") for n in (group_by or "").split(",") if n.strip()]
    names = [out for _, _, out in stats] + groups
    if len({n.lower() for n in names}) != len(names):
        raise InvalidInput("outStatistics: each outStatisticFieldName must be unique and differ from the "
                           "group-by fields", field="outStatistics")
    return stats, groups


def _statistic(coll, spec):
    kind = str(spec.get("statisticType") or "").lower()
    if kind not in features.AGGREGATES:
        raise InvalidInput(f"statisticType {str(kind)[:20]!r} is not supported: use "
                           f"{', '.join(features.AGGREGATES)}", field="outStatistics")
    raw = str(spec.get("onStatisticField") or "").strip()
    name = "*" if raw == "*" and kind == "count" else field(coll, raw, "outStatistics")
    if name != "*" and kind in NUMERIC_ONLY and coll.kind(name) not in ("oid", "int"):
        raise InvalidInput(f"{kind} needs a numeric field; {name} is not one", field="outStatistics")
    if name != "*" and kind in ("min", "max") and coll.kind(name) not in ORDERED:
        raise InvalidInput(f"{kind} cannot be taken of {name}", field="outStatistics")
    out = str(spec.get("outStatisticFieldName") or f"{kind}_{name if name != '*' else 'all'}")
    if not OUT_NAME.match(out):
        raise InvalidInput(f"outStatisticFieldName {out[:40]!r} must be letters, digits and _",
                           field="outStatistics")
    return kind, name, out
