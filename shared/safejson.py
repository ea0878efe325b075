"""JSON from outside (API bodies, provider webhooks), bounded so no input can cost more
than its size: nesting depth, digits in a number, no NaN/Infinity, no lone surrogates.

Every refusal is a `JsonInputError` whose message says what to fix and where (a field
path), never the offending value: it could be a secret pasted in the wrong place."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32  # billsync's own documents nest at most 5 deep
MAX_NUMBER_CHARS = 40  # a 64-bit integer has 20 digits; a Decimal with 28 places fits too


class JsonInputError(ValueError):
    pass


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonInputError(
            f"a number has {len(text)} digits; at most {MAX_NUMBER_CHARS} are accepted"
        )
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonInputError(
            f"a number has {len(text)} characters; at most {MAX_NUMBER_CHARS} are accepted"
        )
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonInputError("a number is too large to represent; send a smaller one")
    return value


def _constant(name: str) -> Any:
    raise JsonInputError(f"{name} is not a JSON number; send a finite number or a string")


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `data` or raise JsonInputError."""
    try:
        parsed = json.loads(data, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except JsonInputError:
        raise
    except RecursionError:
        raise JsonInputError(f"JSON is nested too deeply; at most {max_depth} levels") from None
    except UnicodeDecodeError:
        raise JsonInputError("the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        # Position only: exc.msg and exc.doc may quote the input.
        raise JsonInputError(
            f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError:  # e.g. the interpreter's own integer-digits limit
        raise JsonInputError("a value cannot be parsed; check numbers and escapes") from None
    check(parsed, max_depth)
    return parsed


def check(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Depth and text checks over an already-parsed document (iterative: no recursion)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                raise JsonInputError(
                    f"JSON is nested too deeply at {path or '(body)'}; at most {max_depth} levels"
                )
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str):
                    _text(key, f"a field name in {path or 'the body'}")
                child_path = f"{path}.{key}" if path else str(key)
                stack.append((child, child_path, depth + 1))
        elif isinstance(item, str):
            _text(item, path or "the body")


def _text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonInputError(
            f"the text at {path} contains a lone UTF-16 surrogate (an unpaired "
            "\\ud800-\\udfff escape); send valid Unicode text"
        ) from None
