"""Stripe's search query language, for the fields of invoices the fake supports.

``metadata['order']:'42' AND customer:'cus_x' AND status:'draft'``, ``total>1000``,
``-status:'void'``, ``metadata['k']:null``. Clauses are joined by ``AND`` or ``OR`` (not both).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import invalid

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<neg>-)?(?P<field>metadata\[(?:'[^']*'|"[^"]*")\]|[a-z_]+)
        (?P<op>>=|<=|:|>|<|~)
        (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+|null)
      |(?P<join>AND|OR))\s*""",
    re.VERBOSE,
)

INVOICE_FIELDS = {
    "created": "number",
    "currency": "string",
    "customer": "string",
    "last_finalization_error_code": "string",
    "last_finalization_error_type": "string",
    "metadata": "string",
    "number": "string",
    "receipt_number": "string",
    "status": "string",
    "subscription": "string",
    "total": "number",
}


@dataclass(frozen=True)
class Clause:
    negated: bool
    field: str
    key: str | None  # metadata key
    op: str
    value: str | int | None

    def matches(self, obj: dict[str, Any]) -> bool:
        if self.key is not None:
            actual: Any = (obj.get("metadata") or {}).get(self.key)
        elif self.field.startswith("last_finalization_error_"):
            error = obj.get("last_finalization_error") or {}
            actual = error.get(self.field.removeprefix("last_finalization_error_"))
        else:
            actual = obj.get(self.field)
        result = _compare(actual, self.op, self.value)
        return not result if self.negated else result


def _compare(actual: Any, op: str, value: str | int | None) -> bool:
    if value is None:
        return actual is None
    if op == ":":
        return actual is not None and str(actual) == str(value)
    if op == "~":
        return actual is not None and str(value).lower() in str(actual).lower()
    if not isinstance(actual, int) or not isinstance(value, int):
        return False
    checks: dict[str, Callable[[int, int], bool]] = {
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
    }
    return checks[op](actual, value)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def parse(query: str, fields: dict[str, str], resource: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate for ``query``; syntax errors and unknown fields are 400s on ``query``."""
    pos, clauses, joins = 0, [], set()
    expect_clause = True
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None or match.end() == pos:
            raise invalid(
                f"Search query is invalid: unexpected input at position {pos} "
                f"('{query[pos : pos + 20]}').",
                param="query",
            )
        pos = match.end()
        if match.group("join"):
            if expect_clause:
                raise invalid(
                    f"Search query is invalid: a clause must precede '{match.group('join')}'.",
                    param="query",
                )
            joins.add(match.group("join"))
            expect_clause = True
            continue
        if not expect_clause:
            raise invalid(
                "Search query is invalid: clauses must be joined by AND or OR.", param="query"
            )
        clauses.append(_clause(match, fields, resource))
        expect_clause = False
    if not clauses or expect_clause:
        raise invalid("Search query is invalid: it is empty or ends with AND/OR.", param="query")
    if len(joins) > 1:
        raise invalid(
            "Search query is invalid: AND and OR cannot be combined in one query.", param="query"
        )
    if joins == {"OR"}:
        return lambda obj: any(c.matches(obj) for c in clauses)
    return lambda obj: all(c.matches(obj) for c in clauses)


def _clause(match: re.Match[str], fields: dict[str, str], resource: str) -> Clause:
    raw_field, op, raw_value = match.group("field"), match.group("op"), match.group("value")
    key = None
    name = raw_field
    if raw_field.startswith("metadata["):
        name, key = "metadata", _unquote(raw_field[len("metadata[") : -1])
    if name not in fields or (name == "metadata" and key is None):
        raise invalid(
            f"Field '{raw_field}' is an unsupported search field for resource {resource}. "
            f"See http://stripe.com/docs/search#query-fields-for-{resource} for a list of "
            "supported fields.",
            param="query",
        )
    value: str | int | None
    if raw_value == "null":
        value = None
    elif raw_value[0] in "'\"":
        value = _unquote(raw_value)
    else:
        value = int(raw_value)
    if fields[name] == "string" and op not in (":", "~"):
        raise invalid(
            f"Search query is invalid: '{op}' cannot be used with string field '{raw_field}'.",
            param="query",
        )
    if fields[name] == "number" and isinstance(value, str):
        raise invalid(f"Search query is invalid: '{raw_field}' needs a number.", param="query")
    return Clause(bool(match.group("neg")), name, key, op, value)
