"""Field mappings and Stripe's limits on invoice custom fields and metadata (pure).

Limits are checked before any call, so a bill that Stripe would refuse half-way through
(after the invoice exists) is refused up front with a message naming the mapping."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic.alias_generators import to_camel

from shared.contracts import Account, Bill, LineItem
from shared.contracts.config import (
    StripeFieldMapping,
    StripeMappingTarget,
    stripe_mapping_problems,
)
from shared.money import format_decimal
from shared.sinks.errors import FatalBillError

MAX_CUSTOM_FIELDS = 4
CUSTOM_FIELD_NAME_MAX = 40
CUSTOM_FIELD_VALUE_MAX = 140
MAX_METADATA_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500
DESCRIPTION_MAX = 5000  # an invoice line's or invoice item's description
STRING_MAX = 5000  # any other string parameter (a product id)
LINE_TARGETS = frozenset({StripeMappingTarget.LINE_METADATA, StripeMappingTarget.LINE_PRODUCT})
_CUSTOM = "customFields."
_PRODUCT_FIELDS = {"id": "productId", "code": "productCode", "name": "productName"}


@dataclass
class Sources:
    """What mapping paths read: the bill, its account and (for line targets) one line."""

    bill: Bill
    account: Account
    _wire: dict[str, dict[str, Any]] = field(default_factory=dict)

    def wire(self, root: str) -> dict[str, Any]:
        # Serialised once per plan: a 250-line bill is not re-dumped per mapping.
        if root not in self._wire:
            self._wire[root] = (self.bill if root == "bill" else self.account).to_wire()
        return self._wire[root]


def describe(mapping: StripeFieldMapping, index: int) -> str:
    name = f" '{mapping.name}'" if mapping.name else ""
    return f"fieldMappings[{index}] ({mapping.source} -> {mapping.target.value}{name})"


def check_mappings(mappings: list[StripeFieldMapping]) -> None:
    """Shape errors (refused when the configuration is written; checked again here for a
    configuration that reached the topic another way)."""
    problems = stripe_mapping_problems(mappings)
    if problems:
        raise FatalBillError(problems[0])


def resolve(source: str, sources: Sources, line: LineItem | None = None) -> str | None:
    """The value at `source` as Stripe text; None when missing or empty (nothing is sent)."""
    root, _, path = source.partition(".")
    if root == "product":
        if line is None:
            return None
        if path.startswith(_CUSTOM):
            return as_text(line.product_custom_fields.get(path[len(_CUSTOM) :]))
        return as_text(_walk(line.to_wire(), _PRODUCT_FIELDS.get(path, path)))
    if path.startswith(_CUSTOM):
        model = sources.bill if root == "bill" else sources.account
        return as_text(model.custom_fields.get(path[len(_CUSTOM) :]))
    return as_text(_walk(sources.wire(root), path))


def _walk(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(part, data.get(to_camel(part)))
    return data


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Decimal):
        text = format_decimal(value)
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    else:
        text = str(value)
    return text or None


def check_value(value: str, limit: int, what: str, where: str) -> None:
    if len(value) > limit:
        raise FatalBillError(f"{where}: {what} is {len(value)} characters; Stripe allows {limit}")


def short(text: str, limit: int = 60) -> str:
    """An id as it may appear in a message: a runaway one is cut, not quoted whole."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def check_metadata(metadata: Mapping[str, str], where: str) -> None:
    """Every key and value as sent, billsync's own included (a bill id can be long)."""
    check_key_count(len(metadata), where)
    for key, value in metadata.items():
        if len(key) > METADATA_KEY_MAX or "[" in key or "]" in key:
            raise FatalBillError(
                f"{where}: metadata key {short(key)!r} is not a Stripe metadata key (at most "
                f"{METADATA_KEY_MAX} characters, no square brackets)"
            )
        check_value(value, METADATA_VALUE_MAX, f"metadata value of {short(key)!r}", where)


def check_key_count(count: int, where: str) -> None:
    if count > MAX_METADATA_KEYS:
        raise FatalBillError(
            f"{where}: {count} metadata keys (including billsync's own); "
            f"Stripe allows {MAX_METADATA_KEYS}"
        )
