"""A fast decoder for the `Bill` contract (msgspec), for the router's hot path.

It accepts a strict subset of what the pydantic `Bill` accepts: decimals as JSON strings
in plain notation, shorter than the contract's bounds, RFC 3339 dates and times, integers and
booleans as JSON literals, custom field values that are strings, booleans, integers or
null. Whatever it does not accept, `decode_bill` answers None and the caller asks the
pydantic contract, which stays the authority: so this decoder never refuses a bill the
contract accepts, and never accepts one the contract refuses
(`tests/unit/test_fastbill.py` checks the field lists against the models and acceptance
against the contract).

Unknown fields are ignored here and kept in the bytes the router forwards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated

import msgspec
from msgspec import Meta, Raw, Struct

from shared.contracts.base import DECIMAL_MAX_DIGITS, DECIMAL_MAX_PLACES
from shared.contracts.bill import BillStatus, LineItemType

# A decimal the fast path vouches for: a JSON number without exponent, as a string of at
# most this many characters (so within the contract's 20 whole and 18 decimal places).
_FAST_DECIMAL_MAX_CHARS = min(DECIMAL_MAX_DIGITS - DECIMAL_MAX_PLACES, DECIMAL_MAX_PLACES) + 1
_NUMBER_CHARS = b"0123456789.-,"
_NUMBERS = msgspec.json.Decoder(list[float])

_NULL = Raw(b"null")
FastCustomFields = dict[str, str | bool | int | None]
NonEmpty = Annotated[str, Meta(min_length=1)]
# A decimal's text, its length checked while decoding; its form by _decimals_plain.
FastDecimal = Annotated[str, Meta(min_length=1, max_length=_FAST_DECIMAL_MAX_CHARS)]


class FastPricingBandUsage(Struct, rename="camel", gc=False):
    pricing_band_id: str | None = None
    lower_limit: FastDecimal | None = None
    band_quantity: FastDecimal | None = None
    unit_price: FastDecimal | None = None
    band_subtotal: FastDecimal | None = None
    fixed_price: FastDecimal | None = None


class FastLineItem(Struct, rename="camel", gc=False):
    id: str
    line_item_type: LineItemType
    subtotal: FastDecimal
    description: str | None = None
    quantity: FastDecimal = "0"
    unit: str | None = None
    average_unit_price: FastDecimal | None = None
    currency: str | None = None
    product_id: str | None = None
    product_code: str | None = None
    product_name: str | None = None
    aggregation_id: str | None = None
    plan_id: str | None = None
    pricing_id: str | None = None
    service_period_start_date: datetime | None = None
    service_period_end_date: datetime | None = None
    usage_per_pricing_band: list[FastPricingBandUsage] = []
    product_custom_fields: FastCustomFields = {}


class FastBill(Struct, rename="camel", gc=False):
    id: NonEmpty
    version: Annotated[int, Meta(ge=0)]
    account_id: NonEmpty
    currency: Annotated[str, Meta(min_length=3, max_length=3)]
    account_code: str | None = None
    bill_date: date | None = None
    due_date: date | None = None
    start_date: date | None = None
    end_date: date | None = None
    status: BillStatus = BillStatus.PENDING
    locked: bool = False
    bill_total: FastDecimal | None = None
    purchase_order_number: str | None = None
    external_invoice_reference: str | None = None
    sequential_invoice_number: str | None = None
    billing_frequency: str | None = None
    last_calculated_date: datetime | None = None
    # Validated by the pydantic `Account` (small, and the filter view needs the model);
    # msgspec keeps a Raw field as bytes even when they say null (see embedded_account).
    account: Raw = _NULL
    line_items: list[FastLineItem] = []
    custom_fields: FastCustomFields = {}

    def embedded_account(self) -> bytes | None:
        """The embedded account's JSON, or None when the bill carries none."""
        return None if self.account == _NULL else bytes(self.account)


@dataclass(frozen=True, slots=True)
class DecodedBill:
    bill: FastBill
    lines: list[FastLineItem]


class _RawLines(Struct, rename="camel"):
    """Each line's JSON as published, for splicing prepared bills (other fields skipped)."""

    line_items: list[Raw] = []


_DECODER = msgspec.json.Decoder(FastBill)
_RAW_LINES = msgspec.json.Decoder(_RawLines)


def raw_line_items(raw: bytes) -> list[Raw]:
    """The line items of a bill `decode_bill` accepted, each as its own bytes. A second,
    cheaper pass, made only when a configuration reorders or drops lines: one pass that
    kept both the values and the bytes of every line would cost more on every bill."""
    return _RAW_LINES.decode(raw).line_items


def _decimals_plain(bill: FastBill, lines: list[FastLineItem]) -> bool:
    """Every decimal of the bill in plain notation (their lengths, 1 to the bound, were
    checked while decoding). Checked all at once, in C: only digits, points, minus signs
    (no exponent, space, NaN), and the values joined by commas parse as exactly that many
    JSON numbers (which refuses "1.", ".5", "007", "1-2" and a value holding a comma)."""
    values = [line.quantity for line in lines]
    values += [line.subtotal for line in lines]
    values += [line.average_unit_price or "0" for line in lines]
    values.append(bill.bill_total or "0")
    for line in lines:
        for band in line.usage_per_pricing_band:
            values += (
                band.lower_limit or "0",
                band.band_quantity or "0",
                band.unit_price or "0",
                band.band_subtotal or "0",
                band.fixed_price or "0",
            )
    text = ",".join(values).encode()
    if text.translate(None, _NUMBER_CHARS):
        return False
    try:
        return len(_NUMBERS.decode(b"[" + text + b"]")) == len(values)
    except msgspec.DecodeError:
        return False


def decode_bill(raw: bytes) -> DecodedBill | None:
    """The bill if this decoder can vouch for it; None means: ask the pydantic contract."""
    try:
        bill = _DECODER.decode(raw)
    except msgspec.DecodeError:  # msgspec.ValidationError is a DecodeError
        return None
    lines = bill.line_items
    return DecodedBill(bill, lines) if _decimals_plain(bill, lines) else None
