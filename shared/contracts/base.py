"""Base model for every wire contract: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Bounds on every amount and quantity: at most 20 digits before the point and 18 after.
# Without them "1e400" passes the schema and fails deep in a sink, and "1e999999999"
# makes a sink format a number with a billion digits.
DECIMAL_MAX_DIGITS = 38
DECIMAL_MAX_PLACES = 18

# Money and quantities travel as JSON strings so no consumer ever parses them as float
# (pydantic's own Decimal serialisation, done in Rust: far cheaper than a Python hook).
# NaN and infinities are refused (pydantic's default for Decimal).
DecimalStr = Annotated[
    Decimal, Field(max_digits=DECIMAL_MAX_DIGITS, decimal_places=DECIMAL_MAX_PLACES)
]


class WireModel(BaseModel):
    """camelCase aliases, populate by either name, unknown fields kept (forward compatible)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        frozen=False,
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


class StrictWireModel(WireModel):
    """For inputs an operator writes by hand: an unknown (misspelt) field is an error."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )
