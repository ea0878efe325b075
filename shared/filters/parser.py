"""Parse account filter expressions (grammar.lark) into the AST of nodes.py.

The Lark LALR parser is built once at import.  Rules are transformed *while* parsing (inline
transformer), so no parse tree is built and nothing recurses over the input; error reporting
re-runs the parser interactively to learn exactly which tokens were acceptable.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from .errors import FilterSyntaxError
from .evaluate import AccountFilter
from .nodes import And, CompareOp, Comparison, Membership, Node, Not, Or, TextMatch, TextOp, Value

__all__ = ["MAX_DEPTH", "parse_filter"]

MAX_DEPTH = 50
"""Maximum nesting of boolean sub-expressions (keeps compile/evaluate recursion bounded)."""

_GRAMMAR = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")

_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n"}
_ESCAPES.update({"r": "\r", "t": "\t"})
_ESCAPE_RE = re.compile(  # a UTF-16 surrogate pair (as JSON writes it), \uXXXX, or \c
    r"\\(u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)", re.DOTALL
)
_VALID_ESCAPE_RE = re.compile(r"""\\(?:["'\\/bfnrt]|u[0-9a-fA-F]{4})""")


class _NestingError(Exception):
    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


def _unescape(match: re.Match[str]) -> str:
    esc = match.group(1)
    if len(esc) == 11:  # surrogate pair
        high, low = int(esc[1:5], 16), int(esc[7:], 16)
        return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    return chr(int(esc[1:], 16)) if len(esc) == 5 else _ESCAPES[esc]


def _string(token: Token) -> str:
    return _ESCAPE_RE.sub(_unescape, token.value[1:-1])


def _check_depth(depth: int, position: int) -> int:
    if depth > MAX_DEPTH:
        raise _NestingError(position)
    return depth


class _Path:
    __slots__ = ("position", "segments")

    def __init__(self, segments: tuple[str, ...], position: int) -> None:
        self.segments = segments
        self.position = position


class _ToAst(Transformer[Token, Any]):
    """Inline LALR callbacks: each receives the already-transformed children of one rule."""

    def path(self, children: list[Token]) -> _Path:
        segments: list[str] = []
        for tok in children:
            if tok.type == "WORD":
                segments.extend(tok.value.split("."))
            elif tok.type == "QUOTED_NAME":
                segments.append(tok.value[1:-1].replace("``", "`"))
            else:  # STRING (a quoted segment after a dot)
                segments.append(_string(tok))
        return _Path(tuple(segments), children[0].start_pos or 0)

    def value(self, children: list[Token]) -> Value:
        (tok,) = children
        kind = tok.type
        if kind == "STRING":
            return Value(_string(tok), tok.value)
        if kind == "NUMBER":
            return Value(Decimal(tok.value), tok.value)
        if kind == "WORD":
            return Value(tok.value, tok.value)
        return Value({"TRUE": True, "FALSE": False}.get(kind), tok.value)  # NULL -> None

    text_value = value

    def value_list(self, children: list[Value]) -> tuple[Value, ...]:
        return tuple(children)

    def comparison(self, children: list[Any]) -> Comparison:
        path, op, operand = children
        cmp: CompareOp = "==" if op.value == "=" else op.value
        return Comparison(path.segments, cmp, operand, path.position)

    def in_list(self, children: list[Any]) -> Node:
        path, values = children[0], children[-1]
        node = Membership(path.segments, values, path.position)
        return Not(node, path.position, 2) if len(children) == 3 else node

    def is_null(self, children: list[Any]) -> Comparison:
        path = children[0]
        op: CompareOp = "!=" if len(children) == 3 else "=="
        return Comparison(path.segments, op, Value(None, children[-1].value), path.position)

    def text_match(self, children: list[Any]) -> Node:
        path, keyword, operand = children[0], children[-2], children[-1]
        op: TextOp = keyword.type.lower()
        node = TextMatch(path.segments, op, operand, path.position)
        return Not(node, path.position, 2) if len(children) == 4 else node

    def negation(self, children: list[Any]) -> Node:
        keyword, operand = children
        if isinstance(operand, Not):  # NOT NOT x == x
            return operand.operand
        return Not(operand, keyword.start_pos, _check_depth(operand.depth + 1, keyword.start_pos))

    def and_expr(self, children: list[Node]) -> And:
        operands = _flatten(children, And)
        depth = 1 + max(node.depth for node in operands)
        return And(operands, children[0].position, _check_depth(depth, children[0].position))

    def or_expr(self, children: list[Node]) -> Or:
        operands = _flatten(children, Or)
        depth = 1 + max(node.depth for node in operands)
        return Or(operands, children[0].position, _check_depth(depth, children[0].position))


def _flatten(children: list[Node], kind: type[And] | type[Or]) -> tuple[Node, ...]:
    out: list[Node] = []
    for child in children:
        if isinstance(child, kind):
            out.extend(child.operands)
        else:
            out.append(child)
    return tuple(out)


_PARSER = Lark(
    _GRAMMAR,
    parser="lalr",
    lexer="contextual",
    transformer=_ToAst(),
    maybe_placeholders=False,
)


def parse_filter(text: str) -> AccountFilter:
    """Parse an account filter expression; raises FilterSyntaxError.

    Empty or whitespace-only text gives a filter that matches every account.  Results are
    cached (filters are immutable), so re-parsing the same configuration is free.
    """
    if not isinstance(text, str):
        raise TypeError(f"account filter must be a str, not {type(text).__name__}")
    return _parse_cached(text)


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> AccountFilter:
    if not text.strip():
        return AccountFilter(text, None)
    try:
        node = cast(Node, _PARSER.parse(text))
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    except _NestingError as exc:
        raise FilterSyntaxError(
            text,
            exc.position,
            "expression nested too deeply",
            hint=f"at most {MAX_DEPTH} levels of nested AND/OR/NOT are allowed; simplify it",
        ) from None
    return AccountFilter(text, node)


# --- error reporting (slow path) ------------------------------------------------------------

_VALUE_TERMINALS = frozenset({"STRING", "NUMBER", "WORD", "TRUE", "FALSE", "NULL"})
_NAME_TERMINALS = frozenset({"WORD", "QUOTED_NAME", "STRING"})
_DESCRIPTIONS = {  # in the order they are listed in messages
    "OP": "a comparison operator (==, !=, <, <=, >, >=)",
    "_IN": "IN",
    "NOT": "NOT",
    "_IS": "IS",
    "NULL": "NULL",
    "CONTAINS": "CONTAINS",
    "STARTSWITH": "STARTSWITH",
    "ENDSWITH": "ENDSWITH",
    "_AND": "AND",
    "_OR": "OR",
    "_LPAR": "'('",
    "_COMMA": "','",
    "_RPAR": "')'",
    "$END": "end of input",
}
_KEYWORDS = frozenset({"_AND", "_OR", "NOT", "_IN", "_IS", "CONTAINS", "STARTSWITH", "ENDSWITH"})


def _describe_expected(terminals: set[str]) -> list[str]:
    out: list[str] = []
    rest = set(terminals)
    if {"NUMBER", "TRUE"} <= rest:
        out.append("a value (string, number, true, false, null)")
        rest -= _VALUE_TERMINALS
    elif "NUMBER" in rest:
        out.append("a string or number")
        rest -= {"STRING", "NUMBER", "WORD"}
    if rest & {"WORD", "QUOTED_NAME"}:
        out.append("a field name")
        rest -= _NAME_TERMINALS
    out.extend(desc for name, desc in _DESCRIPTIONS.items() if name in rest)
    return out


def _acceptable_at(text: str, position: int) -> set[str]:
    """Terminals the parser would accept just before ``position`` (exact, unlike LALR's
    merged lookaheads), found by re-running the parse interactively."""
    interactive = _PARSER.parse_interactive(text)
    try:
        for token in interactive.iter_parse():
            if (token.start_pos or 0) >= position:
                break
    except (UnexpectedInput, _NestingError):
        pass
    accepts: set[str] = interactive.accepts()  # type: ignore[no-untyped-call]
    return accepts


def _shown(token: Token) -> str:
    text = token.value if len(token.value) <= 40 else token.value[:37] + "..."
    return f"string {text}" if token.type == "STRING" else repr(text)


def _syntax_error(text: str, exc: UnexpectedInput) -> FilterSyntaxError:
    token: Token | None = None
    if isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
        position = len(text.rstrip())
        problem = "unexpected end of input"
    elif isinstance(exc, UnexpectedToken):
        token = exc.token
        position = token.start_pos or 0
        problem = f"unexpected {_shown(token)}"
    else:
        assert isinstance(exc, UnexpectedCharacters)
        position = exc.pos_in_stream or 0
        quoted = _quoting_error(text, position)
        if quoted is not None:
            return quoted
        problem = f"unexpected character {text[position]!r}"
    accepts = _acceptable_at(text, position)
    return FilterSyntaxError(
        text, position, problem, _describe_expected(accepts), _hint(text, position, token, accepts)
    )


def _quoting_error(text: str, position: int) -> FilterSyntaxError | None:
    """Diagnose a string or `quoted name` that the lexer could not read at ``position``."""
    quote = text[position]
    if quote == "`":
        if text.startswith("``", position) and text.find("`", position + 2) == -1:
            return FilterSyntaxError(text, position, "empty quoted field name ``")
        return FilterSyntaxError(
            text,
            position,
            "unterminated quoted field name",
            hint="close it with ` (write `` for a backtick inside the name)",
        )
    if quote not in "\"'":
        return None
    i = position + 1
    while i < len(text):
        if text[i] == "\\":
            match = _VALID_ESCAPE_RE.match(text, i)
            if match is None:
                return FilterSyntaxError(
                    text,
                    i,
                    f"invalid escape sequence {text[i : i + 2]!r} in string",
                    hint=r"valid escapes are \" \' \\ \/ \b \f \n \r \t \uXXXX",
                )
            i = match.end()
        elif text[i] == quote:
            return None  # a complete string: not a quoting problem
        else:
            i += 1
    return FilterSyntaxError(
        text, position, "unterminated string", hint=f"close the string with {quote}"
    )


def _hint(text: str, position: int, token: Token | None, accepts: set[str]) -> str:
    before = text[:position].rstrip()
    here = text[position : position + 2]
    if token is not None and token.type == "OP" and token.value.startswith("="):
        if before.endswith("="):
            return "write '==' for equality, with no space between the '=' signs"
    if token is not None and token.type == "OP" and token.value == ">" and before.endswith("<"):
        return "write '!=' for 'not equal'"
    if here.startswith("&"):
        return "write AND instead of '&&'"
    if here.startswith("|"):
        return "write OR instead of '||'"
    if here.startswith("!"):
        return "write NOT to negate, or '!=' for 'not equal'"
    if token is None:
        return ""
    if token.type in _KEYWORDS and "NUMBER" in accepts:
        return f'{token.value!r} is a reserved word; quote it to use it as a value: "{token}"'
    if token.type in _KEYWORDS and "QUOTED_NAME" in accepts:
        return f"{token.value!r} is a reserved word; write a field of that name in backticks"
    if token.type in {"STRING", "NUMBER"} and "QUOTED_NAME" in accepts:
        return "the left side of a comparison must be a field path, e.g. address.country == US"
    if token.type == "WORD" and "OP" in accepts:
        return "write field names containing spaces in backticks, e.g. customFields.`cost centre`"
    if token.type in {"WORD", "NUMBER", "STRING"} and "_AND" in accepts:
        return 'quote values that contain spaces (accountName == "Acme Ltd"), or join with AND/OR'
    return ""
