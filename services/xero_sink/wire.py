"""JSON with exact decimals for Xero: numbers read as Decimal, Decimal written as a plain
JSON number (Xero's amounts are numbers; a float would change them)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from shared.money import format_decimal


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


def dumps(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return format_decimal(value)
    return json.dumps(value)
