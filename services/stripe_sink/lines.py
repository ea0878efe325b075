"""One bill line -> one Stripe line (pure).

Stripe charges `quantity x unit_amount_decimal` rounded to the minor unit, and only a Price
(price_data with a product) carries a quantity; an `amount` line always shows quantity 1.
Every planned line therefore charges exactly the bill's subtotal in minor units, and the
description carries the true quantity and unit price whenever Stripe's quantity column
cannot show it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal

from shared.contracts import LineItem
from shared.money import format_decimal, to_minor_decimal, to_minor_units

# Stripe accepts unit_amount_decimal with at most 12 decimal places.
UNIT_PLACES = Decimal(1).scaleb(-12)
_ONE = Decimal(1)
TIMES = "\u00d7"  # the multiplication sign, as on a printed invoice


@dataclass(frozen=True)
class Period:
    start: int  # unix seconds, inclusive
    end: int  # unix seconds, inclusive (Stripe's convention)


@dataclass(frozen=True)
class PlannedLine:
    key: str  # the bill line id ("collapsed" for the single summary line)
    description: str
    amount: int  # minor units Stripe will charge for this line
    # A Price line (price_data) when both are set; otherwise an `amount` line.
    product: str | None = None
    quantity: int | None = None
    unit_amount_decimal: Decimal | None = None  # minor units, <= 12 places, plain notation
    period: Period | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


def is_integral(value: Decimal) -> bool:
    return value == value.to_integral_value()


def plain(value: Decimal) -> Decimal:
    """No exponent, no trailing zeros: the SDK form-encodes str(value)."""
    return Decimal(format_decimal(value))


def price(
    exact_minor: Decimal, quantity: Decimal, amount: int, decimal_mode: bool
) -> tuple[int, Decimal]:
    """(quantity, unit_amount_decimal) whose product Stripe rounds back to `amount`."""
    if not decimal_mode and quantity > 0 and is_integral(quantity):
        whole = int(quantity)
        unit = (exact_minor / whole).quantize(UNIT_PLACES, rounding=ROUND_HALF_UP)
        if (unit * whole).quantize(_ONE, rounding=ROUND_HALF_UP) == amount:
            return whole, plain(unit)
    return 1, plain(exact_minor.quantize(UNIT_PLACES, rounding=ROUND_HALF_UP))


def line_name(item: LineItem) -> str:
    if item.description:
        return item.description
    if item.product_name:
        return item.product_name
    return item.line_item_type.value.replace("_", " ").capitalize()


def unit_price(item: LineItem) -> Decimal | None:
    if item.average_unit_price is not None:
        return item.average_unit_price
    if item.quantity:
        return (item.subtotal / item.quantity).quantize(UNIT_PLACES, rounding=ROUND_HALF_UP)
    return None


def describe(item: LineItem, currency: str, show_quantity: bool) -> str:
    """'API calls — 1,523.5 call x 0.8 USD' (with a multiplication sign) when the quantity
    must be shown in words."""
    name = line_name(item)
    if not show_quantity:
        return name
    text = f"{name} — {format_decimal(item.quantity, grouping=True)}"
    if item.unit:
        text += f" {item.unit}"
    each = unit_price(item)
    if each is not None:
        text += f" {TIMES} {format_decimal(each, grouping=True)} {currency.upper()}"
    return text


def to_unix(moment: datetime | date) -> int:
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(0), tzinfo=UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the billing engine speaks UTC
    return int(moment.timestamp())


def period(start: datetime | date | None, end: datetime | date | None) -> Period | None:
    """m3ter's end is exclusive (the next period's start); Stripe's is inclusive."""
    if start is None or end is None:
        return None
    first, last = to_unix(start), to_unix(end)
    return Period(first, max(first, last - 1))


def plan_line(
    item: LineItem,
    *,
    currency: str,
    product: str | None,
    decimal_mode: bool,
    always_show: bool,
    fallback: Period | None,
    metadata: Mapping[str, str],
) -> PlannedLine:
    amount = to_minor_units(item.subtotal, currency)
    quantity: int | None = None
    unit: Decimal | None = None
    if product is not None and amount >= 0 and item.subtotal >= 0:
        # A Price cannot be negative: credits stay `amount` lines.
        quantity, unit = price(
            to_minor_decimal(item.subtotal, currency), item.quantity, amount, decimal_mode
        )
    shown = Decimal(quantity if quantity is not None else 1)
    show = always_show or decimal_mode or item.quantity != shown
    return PlannedLine(
        key=item.id,
        description=describe(item, currency, show),
        amount=amount,
        product=product if quantity is not None else None,
        quantity=quantity,
        unit_amount_decimal=unit,
        period=period(item.service_period_start_date, item.service_period_end_date) or fallback,
        metadata=dict(metadata),
    )
