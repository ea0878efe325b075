"""The account filter expression language: shared.filters (pure, no I/O)."""

from __future__ import annotations

import itertools
import json
import pickle
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.filters import MAX_DEPTH, AccountFilter, FilterSyntaxError, parse_filter

ACCOUNT: dict[str, Any] = {
    "id": "acc_1",
    "accountName": "Acme Ltd",
    "accountCode": "ACME-001",
    "currency": "GBP",
    "address": {"addressLine1": "1 High St", "locality": "London", "country": "UK"},
    "customFields": {
        "country": "UK",
        "tier": "gold",
        "seats": "10",
        "mrr": 1250.5,
        "vip": True,
        "cost centre": "CC-7",
        "tags": ["beta", "eu", 3],
    },
}


def m(expr: str, account: Mapping[str, Any] = ACCOUNT) -> bool:
    return parse_filter(expr).matches(account)


# --- vendor examples and the API ------------------------------------------------------------


def test_vendor_examples() -> None:
    f = parse_filter("customFields != null AND customFields.country == UK")
    assert isinstance(f, AccountFilter)
    assert f.source == "customFields != null AND customFields.country == UK"
    assert f.matches(ACCOUNT)
    assert not f.matches({"customFields": {"country": "US"}})
    assert not f.matches({"customFields": None})
    assert not f.matches({})
    us = parse_filter("address.country == US")
    assert us.matches({"address": {"country": "US"}})
    assert not us.matches(ACCOUNT)
    assert not us.matches({"address": {"country": "us"}})  # case-sensitive


@pytest.mark.parametrize("text", ["", " ", "\n\t  "])
def test_empty_filter_matches_everything(text: str) -> None:
    f = parse_filter(text)
    assert f.is_empty and f.expression is None and f.source == text
    assert f.matches({}) and f.matches(ACCOUNT)


def test_filter_identity_and_repr() -> None:
    f = parse_filter("id == acc_1")
    assert f == parse_filter("id == acc_1") and hash(f) == hash(parse_filter("id == acc_1"))
    assert f != parse_filter("id == acc_2")
    assert repr(f) == "parse_filter('id == acc_1')"
    assert not f.is_empty


def test_non_string_source_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_filter(None)  # type: ignore[arg-type]


# --- boolean structure ----------------------------------------------------------------------


def _bools(**values: bool) -> dict[str, Any]:
    return {name: int(v) for name, v in values.items()}


@pytest.mark.parametrize(("a", "b", "c"), list(itertools.product([False, True], repeat=3)))
def test_precedence_and_parentheses(a: bool, b: bool, c: bool) -> None:
    acc = _bools(a=a, b=b, c=c)
    assert m("a == 1 OR b == 1 AND c == 1", acc) is (a or (b and c))
    assert m("a == 1 AND b == 1 OR c == 1", acc) is ((a and b) or c)
    assert m("(a == 1 OR b == 1) AND c == 1", acc) is ((a or b) and c)
    assert m("NOT a == 1 AND b == 1", acc) is ((not a) and b)
    assert m("NOT (a == 1 AND b == 1)", acc) is (not (a and b))
    assert m("NOT a == 1 OR NOT b == 1 AND c == 1", acc) is ((not a) or ((not b) and c))
    assert m("NOT NOT a == 1", acc) is a
    assert m("((a == 1)) or (b == 1 and (not c == 1))", acc) is (a or (b and not c))
    assert m("a == 1 AND b == 1 AND c == 1", acc) is (a and b and c)
    assert m("a == 1 OR b == 1 OR c == 1", acc) is (a or b or c)


@pytest.mark.parametrize(
    "expr",
    [
        "customFields.tier == gold and customFields.country == UK",
        "customFields.tier == gold And customFields.country == UK",
        "not customFields.tier == silver",
        "customFields.tier in (gold, silver)",
        "customFields.tier nOt In (bronze)",
        "customFields.missing is null",
        "customFields.tier Is Not NuLL",
        "customFields.vip == TRUE",
        "customFields.vip != False",
        "customFields.missing == NULL",
        "accountName contains Acme",
        "accountName startsWith Acme",
        "accountName endswith Ltd",
    ],
)
def test_keywords_are_case_insensitive(expr: str) -> None:
    assert m(expr)


# --- operators ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("currency == GBP", True),
        ("currency = GBP", True),  # '=' is a synonym of '=='
        ("currency == gbp", False),  # strings are case-sensitive
        ("currency != GBP", False),
        ("currency != USD", True),
        ("currency < GBQ", True),
        ("currency <= GBP", True),
        ("currency > GBP", False),
        ("currency >= GBP", True),
        ('accountName == "Acme Ltd"', True),
        ("accountName == 'Acme Ltd'", True),
        ("accountCode == ACME-001", True),
        ("customFields.seats > 9", True),
        ("customFields.seats > 10", False),
        ("customFields.seats >= 10", True),
        ("customFields.seats < 10.5", True),
        ("customFields.seats <= -1", False),
        ("customFields.mrr > 1250", True),
        ("customFields.mrr == 1250.50", True),
        ("customFields.mrr < 1250.5", False),
        ("customFields.tier IN (silver, gold)", True),
        ("customFields.tier IN (silver, bronze,)", False),
        ("customFields.tier NOT IN (silver, bronze)", True),
        ("customFields.tier NOT IN (gold)", False),
        ("customFields.seats IN (1, 10, 100)", True),
        ("customFields.missing IN (a, null)", True),
        ("customFields.missing NOT IN (a, b)", True),
        ("customFields.tier IS NOT NULL", True),
        ("customFields.tier IS NULL", False),
        ("customFields.nothing IS NULL", True),
        ("accountName CONTAINS me", True),
        ("accountName CONTAINS ME", False),
        ("accountName NOT CONTAINS Widgets", True),
        ("customFields.tags CONTAINS eu", True),
        ("customFields.tags CONTAINS 3", True),
        ("customFields.tags CONTAINS us", False),
        ("customFields.seats CONTAINS 1", True),  # numbers are matched by their text
        ("customFields.mrr CONTAINS 1", False),  # CONTAINS needs a string or list field
        ("accountCode STARTSWITH ACME", True),
        ("accountCode STARTSWITH 'acme'", False),
        ("accountCode NOT STARTSWITH X", True),
        ("accountCode ENDSWITH 001", True),
        ("accountCode NOT ENDSWITH 001", False),
        ("customFields.vip == true", True),
        ("customFields.vip == false", False),
        ("customFields.vip != true", False),
        ("customFields.vip > false", False),  # ordering with booleans is never true
        ("customFields.vip == 1", False),  # booleans are not numbers
        ("customFields.tier > null", False),
        ("customFields.tier < null", False),
    ],
)
def test_operators(expr: str, expected: bool) -> None:
    assert m(expr) is expected


# --- values and types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seats", "expected"),
    [
        ("10", True),
        (10, True),
        ("10.0", True),
        (10.0, True),
        (Decimal("10.00"), True),
        ("010", True),
        ("10 ", False),
        ("1e1", False),
        ("ten", False),
        (True, False),
        (None, False),
        (float("nan"), False),
        (float("inf"), False),
        (Decimal("NaN"), False),
        (Decimal("sNaN"), False),
        ([10], False),
        ({"value": 10}, False),
    ],
)
def test_number_literal_against_numbers_and_numeric_strings(seats: Any, expected: bool) -> None:
    acc = {"customFields": {"seats": seats}}
    assert m("customFields.seats == 10", acc) is expected
    assert m("customFields.seats != 10", acc) is not expected
    assert m("customFields.seats IN (3, 10)", acc) is expected
    assert m("customFields.seats >= 10", acc) is expected
    assert m("customFields.seats < 10", acc) is False


def test_numbers_are_exact_decimals() -> None:
    acc = {"customFields": {"rate": 0.1, "big": 10**30, "s": "0.30"}}
    assert m("customFields.rate == 0.1", acc)
    assert m("customFields.rate < 0.10000000000000001", acc)
    assert m("customFields.big == 1000000000000000000000000000000", acc)
    assert m("customFields.big > 999999999999999999999999999999.5", acc)
    assert m("customFields.s == 0.3", acc)
    assert m("customFields.s > -0.31", acc)


def test_quoted_strings_compare_as_strings_except_against_number_fields() -> None:
    acc = {"customFields": {"code": "10", "n": 10}}
    assert m('customFields.code == "10"', acc)
    assert not m('customFields.code == "10.0"', acc)  # str vs str: exact text
    assert m('customFields.n == "10.0"', acc)  # number field vs numeric string: numeric
    assert m('customFields.n > "9"', acc)
    assert not m('customFields.code > "9"', acc)  # "10" < "9" as strings
    assert not m('customFields.n == "ten"', acc)


def test_booleans_match_only_booleans() -> None:
    assert m("customFields.flag == true", {"customFields": {"flag": True}})
    assert not m("customFields.flag == true", {"customFields": {"flag": "true"}})
    assert not m("customFields.flag == true", {"customFields": {"flag": 1}})
    assert m('customFields.flag == "true"', {"customFields": {"flag": "true"}})
    assert m("customFields.flag == false", {"customFields": {"flag": False}})
    assert not m("customFields.flag == false", {"customFields": {}})


@pytest.mark.parametrize(
    ("expr", "expected_value"),
    [
        ("x == UK", "UK"),
        ("x == eu-west-1", "eu-west-1"),
        ("x == example.com", "example.com"),
        ("x == 2fa", "2fa"),
        ("x == 1.2.3", "1.2.3"),
        ("x == _private", "_private"),
        ("x == Zürich", "Zürich"),
        ('x == "AND"', "AND"),
        ("x == 'null'", "null"),
        (r'x == "a\"b\\c\/\n\t\u00e9"', 'a"b\\c/\n\té'),
        (r"x == 'it\'s'", "it's"),
        ('x == "it\'s"', "it's"),
        ('x == ""', ""),
    ],
)
def test_literal_spellings(expr: str, expected_value: str) -> None:
    assert m(expr, {"x": expected_value})
    assert not m(expr, {"x": expected_value + "!"})


def test_null_semantics() -> None:
    assert m("customFields != null", {"customFields": {}})  # an empty mapping is not null
    assert not m("customFields != null", {"customFields": None})
    assert not m("customFields != null", {})
    assert m("customFields == null", {})
    assert m("customFields.tier != gold", {})  # != is exactly NOT ==, also for missing fields
    assert not m("customFields.tier == gold", {})


@pytest.mark.parametrize(
    "account",
    [
        {},
        {"customFields": None},
        {"customFields": "UK"},
        {"customFields": ["country"]},
        {"customFields": 7},
        {"customFields": {"country": None}},
        {"customFields": {"other": "UK"}},
    ],
)
def test_missing_and_non_mapping_traversal_is_null(account: dict[str, Any]) -> None:
    assert m("customFields.country == null", account)
    assert m("customFields.country.code.deep == null", account)
    assert not m("customFields.country == UK", account)
    assert not m("customFields.country > 0", account)
    assert not m("customFields.country CONTAINS U", account)


def test_quoted_path_segments() -> None:
    acc = {"customFields": {"cost centre": "CC-7", "a`b": 1, "x.y": 2, "in": 3}, "in": 4}
    assert m("customFields.`cost centre` == CC-7", acc)
    assert m('customFields."cost centre" == CC-7', acc)
    assert m("customFields.'cost centre' == CC-7", acc)
    assert m("customFields.`a``b` == 1", acc)
    assert m("customFields.`x.y` == 2", acc)
    assert m("customFields.`in` == 3 AND `in` == 4", acc)
    assert m("customFields . tier == null", acc)


def test_paths_and_keys_are_case_sensitive() -> None:
    assert m("accountName == 'Acme Ltd'")
    assert m("accountname == null")
    assert m("CUSTOMFIELDS.country == null")


def test_matches_never_raises_on_odd_accounts() -> None:
    class Exploding(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise RuntimeError("boom")

        def __iter__(self) -> Iterator[str]:
            return iter(())

        def __len__(self) -> int:
            return 0

    f = parse_filter("customFields.country == UK OR id == null")
    assert f.matches(Exploding()) is False  # an account that cannot be read matches nothing
    assert f.matches({"customFields": {}}) is True
    assert f.matches(None) is True  # type: ignore[arg-type]  # not a mapping: no fields
    assert parse_filter("id == x").matches(42) is False  # type: ignore[arg-type]


def test_custom_mapping_types_are_traversed() -> None:
    from types import MappingProxyType

    acc = MappingProxyType({"address": MappingProxyType({"country": "US"})})
    assert m("address.country == US", acc)


def test_nesting_limit() -> None:
    ok = "NOT (a == 1 AND " * 10 + "b == 1" + ")" * 10
    parse_filter(ok)
    deep = "NOT (a == 1 AND NOT (b == 1 OR " * MAX_DEPTH + "c == 1" + "))" * MAX_DEPTH
    with pytest.raises(FilterSyntaxError, match="nested too deeply"):
        parse_filter(deep)
    # redundant parentheses and NOT NOT do not count
    assert m("(" * 500 + "a == 1" + ")" * 500, {"a": 1})
    assert m("NOT " * 1000 + "a == 1", {"a": 1})


# --- syntax errors --------------------------------------------------------------------------

VALUE = "a value (string, number, true, false, null)"
OPERATORS = [
    "a comparison operator (==, !=, <, <=, >, >=)",
    "IN",
    "NOT",
    "IS",
    "CONTAINS",
    "STARTSWITH",
    "ENDSWITH",
]


@pytest.mark.parametrize(
    ("text", "position", "line", "column", "expected", "fragment"),
    [
        ("accountCode ==", 14, 1, 15, [VALUE], "unexpected end of input"),
        ("accountCode ==   ", 14, 1, 15, [VALUE], "unexpected end of input"),
        ("(a == 1", 7, 1, 8, ["AND", "OR", "')'"], "unexpected end of input"),
        ("a == 1 AND", 10, 1, 11, ["a field name", "NOT", "'('"], "unexpected end of input"),
        ("a = = 1", 4, 1, 5, [VALUE], "write '=='"),
        ("a == = 1", 5, 1, 6, [VALUE], "write '=='"),
        ("a ~ b", 2, 1, 3, OPERATORS, "unexpected character '~'"),
        ('a == "abc', 5, 1, 6, [], "unterminated string"),
        ("a == 'abc", 5, 1, 6, [], "unterminated string"),
        (r'a == "x\q"', 7, 1, 8, [], "invalid escape sequence"),
        ("a.`b == 1", 2, 1, 3, [], "unterminated quoted field name"),
        ("a == 1 b == 2", 7, 1, 8, ["AND", "OR", "end of input"], "unexpected 'b'"),
        ("a == 1)", 6, 1, 7, ["AND", "OR", "end of input"], "unexpected ')'"),
        ("a == AND", 5, 1, 6, [VALUE], "reserved word"),
        ("in == 1", 0, 1, 1, ["a field name", "NOT", "'('"], "reserved word"),
        ('"UK" == a', 0, 1, 1, ["a field name", "NOT", "'('"], "must be a field path"),
        ("a IN 1", 5, 1, 6, ["'('"], "unexpected '1'"),
        ("a IN (1, 2", 10, 1, 11, ["','", "')'"], "unexpected end of input"),
        ("a IN ()", 6, 1, 7, [VALUE], "unexpected ')'"),
        ("a IS 3", 5, 1, 6, ["NOT", "NULL"], "unexpected '3'"),
        ("a STARTSWITH null", 13, 1, 14, ["a string or number"], "unexpected 'null'"),
        ("a.", 2, 1, 3, ["a field name"], "unexpected end of input"),
        ("a <> 1", 3, 1, 4, [VALUE], "write '!='"),
        ("a == 1 && b == 2", 7, 1, 8, ["AND", "OR", "end of input"], "write AND"),
        ("a == 1 || b == 2", 7, 1, 8, ["AND", "OR", "end of input"], "write OR"),
        ("accountName == Acme Ltd", 20, 1, 21, ["AND", "OR", "end of input"], "quote values"),
        ("customFields.cost centre == 1", 18, 1, 19, OPERATORS, "backticks"),
        ("a == 1 AND\n  (b == 2 OR\n   c ==)", 31, 3, 8, [VALUE], "unexpected ')'"),
        ("NOT", 3, 1, 4, ["a field name", "NOT", "'('"], "unexpected end of input"),
        ("()", 1, 1, 2, ["a field name", "NOT", "'('"], "unexpected ')'"),
    ],
)
def test_syntax_errors(
    text: str, position: int, line: int, column: int, expected: list[str], fragment: str
) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.position, err.line, err.column) == (position, line, column)
    assert err.expected == expected
    message = str(err)
    assert message.startswith("account filter: ")
    assert f"line {line}, column {column} (position {position})" in message
    assert fragment in message
    # the caret excerpt: the offending line, then a caret under the error column
    excerpt_line, caret_line = message.splitlines()[-2:]
    assert excerpt_line == "    " + text.splitlines()[line - 1]
    assert caret_line == " " * (4 + column - 1) + "^"


def test_error_message_format_example() -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("customFields.country == == UK")
    assert str(info.value) == (
        "account filter: unexpected '==' at line 1, column 25 (position 24); expected "
        "a value (string, number, true, false, null). Hint: write '==' for equality, with no "
        "space between the '=' signs\n"
        "    customFields.country == == UK\n"
        "                            ^"
    )


def test_long_lines_are_cut_in_the_excerpt() -> None:
    text = "a == 1 AND " * 30 + "b =="
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    excerpt, caret = str(info.value).splitlines()[-2:]
    assert excerpt.startswith("    ...") and len(excerpt) < 80
    assert caret.index("^") == len(excerpt)


def test_syntax_error_pickles() -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("a ==")
    clone = pickle.loads(pickle.dumps(info.value))
    assert str(clone) == str(info.value) and clone.expected == info.value.expected


# --- properties (hypothesis) ----------------------------------------------------------------

FIELDS = ["id", "accountName", "customFields", "address", "country", "seats", "tier", "x"]
RESERVED = {"and", "or", "not", "in", "is", "null", "true", "false"}
RESERVED |= {"contains", "startswith", "endswith"}


def kw(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.lower(), word.capitalize()])


segments = st.sampled_from(FIELDS) | st.sampled_from(["`cost centre`", '"a-b c"', "`x``y`"])
paths = st.lists(segments, min_size=1, max_size=3).filter(lambda s: s[0][0] != '"').map(".".join)
bare_words = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,6}", fullmatch=True).filter(
    lambda w: w.lower() not in RESERVED
)
numbers = st.integers(-(10**6), 10**6).map(str) | st.decimals(
    min_value=-1000, max_value=1000, places=2, allow_nan=False, allow_infinity=False
).map(str)
strings = st.text(max_size=6).map(json.dumps) | st.sampled_from(["'UK'", "'it\\'s'"])
text_values = bare_words | numbers | strings
values = text_values | kw("true") | kw("false") | kw("null")
compare_ops = st.sampled_from(["==", "=", "!=", "<", "<=", ">", ">="])


@st.composite
def predicates(draw: st.DrawFn) -> str:
    path = draw(paths)
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return f"{path} {draw(compare_ops)} {draw(values)}"
    if kind == 1:
        items = ", ".join(draw(st.lists(values, min_size=1, max_size=4)))
        neg = draw(kw("NOT")) + " " if draw(st.booleans()) else ""
        return f"{path} {neg}{draw(kw('IN'))} ({items})"
    if kind == 2:
        neg = " " + draw(kw("NOT")) if draw(st.booleans()) else ""
        return f"{path} {draw(kw('IS'))}{neg} {draw(kw('NULL'))}"
    if kind == 3:
        return f"{path} {draw(kw('CONTAINS'))} {draw(values)}"
    op = draw(st.sampled_from(["STARTSWITH", "ENDSWITH"]))
    return f"{path} {draw(kw(op))} {draw(text_values)}"


expressions = st.recursive(
    predicates(),
    lambda inner: st.one_of(
        st.tuples(inner, kw("AND"), inner).map(" ".join),
        st.tuples(inner, kw("OR"), inner).map(" ".join),
        st.tuples(kw("NOT"), inner).map(" ".join),
        inner.map(lambda e: f"({e})"),
    ),
    max_leaves=8,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.decimals()
    | st.text(max_size=5)
    | st.sampled_from(["10", "10.0", "-3.5", "UK", "gold", "true", ""])
)
keys = st.sampled_from([*FIELDS, "cost centre", "a-b c", "x`y"]) | st.text(max_size=3)
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
accounts = st.dictionaries(keys, nested, max_size=6)

SOUP = [
    *(" ", "a", "x.y", "`q r`", ".", "==", "=", "!=", "<", ">=", "(", ")", ",", "'s'", '"', "'"),
    *("\\", "1", "-2.5", " AND ", " or ", "NOT ", " IN ", " is ", "null", "TRUE", "~", "\n"),
    *(" contains ", " startswith ", "é", "\x00"),
]
token_soup = st.lists(st.sampled_from(SOUP), max_size=14).map("".join)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.text(max_size=40) | token_soup)
def test_arbitrary_text_only_raises_filter_syntax_error(text: str) -> None:
    try:
        f = parse_filter(text)
    except FilterSyntaxError as err:
        assert 0 <= err.position <= len(text)
        assert err.line == text.count("\n", 0, err.position) + 1
        assert err.column >= 1
        assert str(err).startswith("account filter: ")
    else:
        assert f.source == text


@FAST
@given(expressions, accounts)
def test_generated_expressions_parse_and_evaluate_without_raising(
    expr: str, account: dict[str, Any]
) -> None:
    f = parse_filter(expr)
    assert f.source == expr
    # the raw compiled predicate, not the never-raise safety net in matches()
    result = f._predicate(account)
    assert type(result) is bool
    assert f.matches(account) is result
    assert parse_filter(f"NOT ({expr})").matches(account) is (not result)


@FAST
@given(expressions, expressions, accounts)
def test_boolean_connectives_agree_with_python(left: str, right: str, account: Any) -> None:
    a, b = parse_filter(left).matches(account), parse_filter(right).matches(account)
    assert parse_filter(f"({left}) AND ({right})").matches(account) is (a and b)
    assert parse_filter(f"({left}) or ({right})").matches(account) is (a or b)


@FAST
@given(token_soup, accounts)
def test_whatever_parses_evaluates_without_raising(text: str, account: dict[str, Any]) -> None:
    try:
        f = parse_filter(text)
    except FilterSyntaxError:
        return
    assert type(f._predicate(account)) is bool


@FAST
@given(st.text(max_size=8), st.text(max_size=8))
def test_any_quoted_string_round_trips(needle: str, other: str) -> None:
    literal = json.dumps(needle)
    assert m(f"customFields.s == {literal}", {"customFields": {"s": needle}})
    assert m(f"customFields.s == {literal}", {"customFields": {"s": other}}) is (needle == other)
    assert m(f"customFields.s STARTSWITH {literal}", {"customFields": {"s": needle + other}})
