"""A small, safe parser for the `where` of Esri FeatureServer queries.

It accepts simple comparisons joined by AND / OR / NOT with parentheses:
  field = 'x', field <> 3, field >= DATE '2024-01-01', field IN ('a', 'b'), field LIKE 'Pot%',
  field IS [NOT] NULL, field BETWEEN 1 AND 5, UPPER(field) LIKE '%X%', and constant tests like 1=1.
Fields must belong to the collection; values become bound parameters. The text is never pasted into SQL.
"""
import operator
import re

from sqlalchemy import and_, false, func, not_, or_, true

from gis.errors import InvalidInput
from gis.features import typed

_TOKEN = re.compile(r"""\s*(?:
    (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<op><>|!=|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
)""", re.VERBOSE)
KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE", "IS", "NULL", "BETWEEN", "DATE", "TIMESTAMP", "UPPER", "LOWER",
            "TRUE", "FALSE"}
COMPARE = {"=": operator.eq, "<>": operator.ne, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
           ">": operator.gt, ">=": operator.ge}
MAX_LENGTH = 4000


class WhereError(InvalidInput):
    code = "invalid_where"


def _tokens(where):
    pos, out = 0, []
    while pos < len(where):
        if where[pos:].strip() == "":
            break
        m = _TOKEN.match(where, pos)
        if not m or m.end() == pos:
            raise WhereError(f"cannot read the where clause near {where[pos:pos + 20]!r}", field="where")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "string":
            value = value[1:-1].replace("''", "'")
        elif kind == "word" and value.upper() in KEYWORDS:
            kind, value = "kw", value.upper()
        out.append((kind, value))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, coll, tokens):
        self.coll, self.toks, self.i = coll, tokens, 0

    def peek(self, kind=None, value=None):
        if self.i >= len(self.toks):
            return None
        tok = self.toks[self.i]
        if (kind and tok[0] != kind) or (value and tok[1] != value):
            return None
        return tok

    def take(self, kind=None, value=None, what="more"):
        tok = self.peek(kind, value)
        if tok is None:
            found = self.toks[self.i][1] if self.i < len(self.toks) else "the end"
            raise WhereError(f"where clause: expected {what}, found {str(found)[:30]!r}", field="where")
        self.i += 1
        return tok

    def parse(self):
        cond = self.disjunction()
        if self.i != len(self.toks):
            raise WhereError(f"where clause: unexpected {str(self.toks[self.i][1])[:30]!r}", field="where")
        return cond

    def disjunction(self):
        parts = [self.conjunction()]
        while self.peek("kw", "OR"):
            self.i += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else or_(*parts)

    def conjunction(self):
        parts = [self.negation()]
        while self.peek("kw", "AND"):
            self.i += 1
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else and_(*parts)

    def negation(self):
        if self.peek("kw", "NOT"):
            self.i += 1
            return not_(self.negation())
        if self.peek("punct", "("):
            self.i += 1
            cond = self.disjunction()
            self.take("punct", ")", "')'")
            return cond
        return self.comparison()

    def operand(self):
        """('field', name, expr) or ('value', python value)."""
        tok = self.take(what="a field or a value")
        kind, value = tok
        if kind == "word":
            return ("field", value, self.coll.column(value))
        if kind == "kw" and value in ("UPPER", "LOWER"):
            self.take("punct", "(", "'('")
            name = self.take("word", what="a field name")[1]
            self.take("punct", ")", "')'")
            fn = func.upper if value == "UPPER" else func.lower
            return ("field", name, fn(self.coll.column(name)))
        if kind == "kw" and value in ("DATE", "TIMESTAMP"):
            return ("value", ("date", self.take("string", what="a quoted date")[1]))
        if kind == "kw" and value in ("TRUE", "FALSE"):
            return ("value", value == "TRUE")
        if kind == "string":
            return ("value", value)
        if kind == "number":
            return ("value", float(value) if any(c in value for c in ".eE") else int(value))
        raise WhereError(f"where clause: unexpected {str(value)[:30]!r}", field="where")

    def value_for(self, name, operand):
        if operand[0] != "value":
            raise WhereError("where clause: compare a field with a value, not with another field", field="where")
        value = operand[1]
        if isinstance(value, tuple):
            value = value[1]
        return typed(self.coll, name, value)

    def comparison(self):
        left = self.operand()
        if self.peek("kw", "IS"):
            self.i += 1
            negate = bool(self.peek("kw", "NOT")) and bool(self.take())
            self.take("kw", "NULL", "NULL")
            expr = self._field(left)
            return expr.is_not(None) if negate else expr.is_(None)
        negate = bool(self.peek("kw", "NOT")) and bool(self.take())
        if self.peek("kw", "IN"):
            self.i += 1
            self.take("punct", "(", "'('")
            values = [self.value_for(left[1], self.operand())]
            while self.peek("punct", ","):
                self.i += 1
                values.append(self.value_for(left[1], self.operand()))
            self.take("punct", ")", "')'")
            cond = self._field(left).in_(values)
        elif self.peek("kw", "LIKE"):
            self.i += 1
            pattern = self.take("string", what="a quoted pattern")[1]
            cond = self._field(left).like(pattern)
        elif self.peek("kw", "BETWEEN"):
            self.i += 1
            low = self.value_for(left[1], self.operand())
            self.take("kw", "AND", "AND")
            high = self.value_for(left[1], self.operand())
            cond = self._field(left).between(low, high)
        else:
            if negate:
                raise WhereError("where clause: NOT must precede IN, LIKE or BETWEEN here", field="where")
            op = COMPARE[self.take("op", what="a comparison operator")[1]]
            right = self.operand()
            if left[0] == "value" and right[0] == "value":   # 1=1, 1=0: ArcGIS's way of saying all/none
                if isinstance(left[1], str) != isinstance(right[1], str) or isinstance(left[1], tuple):
                    raise WhereError("where clause: cannot compare those values", field="where")
                try:
                    return true() if op(left[1], right[1]) else false()
                except TypeError:
                    raise WhereError("where clause: cannot compare those values", field="where") from None
            if left[0] == "value":
                left, right = right, left
                op = {operator.lt: operator.gt, operator.gt: operator.lt, operator.le: operator.ge,
                      operator.ge: operator.le}.get(op, op)
            if right[0] == "field":
                raise WhereError("where clause: compare a field with a value, not with another field",
                                 field="where")
            return op(left[2], self.value_for(left[1], right))
        return not_(cond) if negate else cond

    @staticmethod
    def _field(operand):
        if operand[0] != "field":
            raise WhereError("where clause: IS/IN/LIKE/BETWEEN need a field on the left", field="where")
        return operand[2]


def parse_where(coll, where):
    """A SQLAlchemy condition for `where` over collection `coll` (None for an empty clause)."""
    where = (where or "").strip()
    if not where:
        return None
    if len(where) > MAX_LENGTH:
        raise WhereError(f"where clause longer than {MAX_LENGTH} characters", field="where")
    return _Parser(coll, _tokens(where)).parse()
