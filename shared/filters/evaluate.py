"""Compile a filter AST into nested closures, and the AccountFilter that runs them.

Matching never walks a parse tree: each node becomes one small closure.  Values are compared
by kind: str with str, numbers (int, float, Decimal and numeric-looking strings) as Decimal,
bool with bool; anything else is simply "not equal" / "not ordered", never an exception.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from .nodes import And, Comparison, Membership, Node, Not, Or, TextMatch, Value

__all__ = ["AccountFilter", "compile_node"]

Predicate = Callable[[Any], bool]
Test = Callable[[Any], bool]

# Strings that compare numerically against numbers: 10, -3, 10.0 (no spaces, no exponent).
_NUMERIC_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)

_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SEQUENCES = (list, tuple, set, frozenset)


def _number(value: Any) -> int | Decimal | None:
    """A non-str, non-bool numeric value as an exactly comparable number, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    return None


def _numeric_str(value: str) -> Decimal | None:
    return Decimal(value) if _NUMERIC_RE.fullmatch(value) else None


def _walk(obj: Any, path: tuple[str, ...]) -> Any:
    """Follow ``path`` through nested mappings; missing keys / non-mappings give None."""
    for key in path:
        if type(obj) is dict or isinstance(obj, Mapping):
            obj = obj.get(key)
        else:
            return None
    return obj


def _equals(operands: tuple[Value, ...]) -> Test:
    """Test "field value equals any of ``operands``" (== and IN)."""
    strs = frozenset(v.value for v in operands if isinstance(v.value, str))
    bools = frozenset(v.value for v in operands if isinstance(v.value, bool))
    null = any(v.value is None for v in operands)
    # numbers in the expression, compared against numeric-looking string fields
    num_lits = frozenset(v.value for v in operands if isinstance(v.value, Decimal))
    # ... and numeric-looking string literals too, compared against number fields
    num_any = num_lits | {n for s in strs if (n := _numeric_str(s)) is not None}

    def test(value: Any) -> bool:
        if value is None:
            return null
        if isinstance(value, str):
            if value in strs:
                return True
            return bool(num_lits) and _numeric_str(value) in num_lits
        if isinstance(value, bool):
            return value in bools
        number = _number(value)
        return number is not None and number in num_any

    return test


def _ordering(op: str, operand: Value) -> Test:
    compare = _ORDER_OPS[op]
    literal = operand.value
    if isinstance(literal, Decimal):
        number = literal

        def num_test(value: Any) -> bool:
            n = _numeric_str(value) if isinstance(value, str) else _number(value)
            return n is not None and compare(n, number)

        return num_test
    if isinstance(literal, str):
        text = literal
        text_number = _numeric_str(literal)

        def str_test(value: Any) -> bool:
            if isinstance(value, str):
                return compare(value, text)
            if text_number is None:
                return False
            n = _number(value)
            return n is not None and compare(n, text_number)

        return str_test
    return lambda value: False  # ordering against true/false/null is never true


def _text_match(node: TextMatch) -> Test:
    literal = node.operand.value
    needle = node.operand.text if isinstance(literal, Decimal) else literal
    if node.op == "contains":
        element_equals = _equals((node.operand,))

        def contains(value: Any) -> bool:
            if isinstance(value, str):
                return isinstance(needle, str) and needle in value
            if isinstance(value, _SEQUENCES):
                return any(element_equals(item) for item in value)
            return False

        return contains
    if not isinstance(needle, str):
        return lambda value: False
    affix = needle
    if node.op == "startswith":
        return lambda value: isinstance(value, str) and value.startswith(affix)
    return lambda value: isinstance(value, str) and value.endswith(affix)


def _on_path(path: tuple[str, ...], test: Test) -> Predicate:
    """Apply ``test`` to the value at ``path`` (fast paths for the common short paths)."""
    if len(path) == 1:
        (key,) = path

        def one(account: Any) -> bool:
            if type(account) is dict:
                return test(account.get(key))
            return test(_walk(account, path))

        return one
    if len(path) == 2:
        first, second = path

        def two(account: Any) -> bool:
            if type(account) is dict:
                inner = account.get(first)
                if type(inner) is dict:
                    return test(inner.get(second))
            return test(_walk(account, path))

        return two
    return lambda account: test(_walk(account, path))


def compile_node(node: Node) -> Predicate:
    """Compile an AST node into a predicate over an account mapping."""
    if isinstance(node, Comparison):
        if node.op in ("==", "!="):
            equals = _equals((node.operand,))
            if node.op == "==":
                return _on_path(node.path, equals)
            return _on_path(node.path, lambda value: not equals(value))
        return _on_path(node.path, _ordering(node.op, node.operand))
    if isinstance(node, Membership):
        return _on_path(node.path, _equals(node.operands))
    if isinstance(node, TextMatch):
        return _on_path(node.path, _text_match(node))
    if isinstance(node, Not):
        inner = compile_node(node.operand)
        return lambda account: not inner(account)
    parts = tuple(compile_node(operand) for operand in node.operands)
    if isinstance(node, And):
        return _all(parts)
    assert isinstance(node, Or)
    return _any(parts)


def _all(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 2:
        left, right = parts
        return lambda account: left(account) and right(account)

    def all_of(account: Any) -> bool:
        for part in parts:
            if not part(account):
                return False
        return True

    return all_of


def _any(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 2:
        left, right = parts
        return lambda account: left(account) or right(account)

    def any_of(account: Any) -> bool:
        for part in parts:
            if part(account):
                return True
        return False

    return any_of


def _match_all(account: Any) -> bool:
    return True


class AccountFilter:
    """A parsed account filter (immutable); build it with ``parse_filter``."""

    __slots__ = ("_expression", "_predicate", "_source")

    def __init__(self, source: str, expression: Node | None) -> None:
        self._source = source
        self._expression = expression
        self._predicate: Predicate = _match_all if expression is None else compile_node(expression)

    @property
    def source(self) -> str:
        """The expression text as given."""
        return self._source

    @property
    def expression(self) -> Node | None:
        """The parsed AST (None for the empty filter)."""
        return self._expression

    @property
    def is_empty(self) -> bool:
        """True for the empty filter, which matches every account."""
        return self._expression is None

    def matches(self, account: Mapping[str, Any]) -> bool:
        """Whether ``account`` satisfies the filter.  Never raises."""
        try:
            return self._predicate(account)
        except Exception:  # noqa: BLE001 - e.g. a custom Mapping whose get() raises: no match
            return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccountFilter):
            return NotImplemented
        return self._source == other._source

    def __hash__(self) -> int:
        return hash(self._source)

    def __repr__(self) -> str:
        return f"parse_filter({self._source!r})"
