"""One bill line -> one Stripe line (pure).

Stripe charges `quantity x unit_amount_decimal` rounded to the minor unit, and only a Price
(price_data with a product) carries a quantity; an `amount` line always shows quantity 1.
Every planned line therefore charges exactly the bill's subtotal in the minor units Stripe
accepts (`to_stripe_minor_units`: three-decimal currencies to a multiple of 10), and the
description carries the true quantity and unit price whenever Stripe's quantity column
cannot show it. With `sendDecimalQuantities` a Price line carries a non-integer quantity
itself (`quantity_decimal`). Every decimal is sent in plain notation (`PlainDecimal`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from shared.contracts import LineItem
from shared.money import format_decimal, plain_decimal, to_minor_decimal

from .money import STRIPE_MAX_MINOR_UNITS, to_stripe_minor_units

# Stripe accepts unit_amount_decimal and quantity_decimal with at most 12 decimal places.
MAX_PLACES = 12
UNIT_PLACES = Decimal(1).scaleb(-MAX_PLACES)
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
    # A Price line (price_data) when a product and a quantity are set; else an `amount` line.
    product: str | None = None
    quantity: int | None = None
    unit_amount_decimal: Decimal | None = None  # minor units, <= 12 places, plain notation
    period: Period | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    # A non-integer quantity sent as `quantity_decimal` (sendDecimalQuantities); `quantity`
    # is then None.
    quantity_decimal: Decimal | None = None

    @property
    def is_price(self) -> bool:
        return self.product is not None and (
            self.quantity is not None or self.quantity_decimal is not None
        )


def is_integral(value: Decimal) -> bool:
    return value == value.to_integral_value()


def places(value: Decimal) -> int:
    """Decimal places of `value` in plain notation, trailing zeros ignored."""
    _, _, fraction = format_decimal(value).partition(".")
    return len(fraction)


def plain(value: Decimal) -> Decimal:
    """No exponent, no trailing zeros: the SDK form-encodes str(value)."""
    return plain_decimal(value)


def _rounds_to(unit: Decimal, quantity: Decimal, amount: int) -> bool:
    return (unit * quantity).quantize(_ONE, rounding=ROUND_HALF_UP) == amount


def price(
    exact_minor: Decimal, quantity: Decimal, amount: int, *, decimal_quantity: bool
) -> tuple[Decimal, Decimal]:
    """(quantity, unit_amount_decimal) whose product Stripe rounds back to `amount`.

    The bill's own quantity when a unit exists for it (a non-integer one only with
    `decimal_quantity`); otherwise quantity 1 at the whole amount. `exact_minor` is the
    subtotal in minor units before rounding: its unit price is preferred, so Stripe shows
    the bill's unit price where it can."""
    if abs(amount) > STRIPE_MAX_MINOR_UNITS:
        return _ONE, plain(Decimal(amount))  # refused by the plan's maximum check
    usable = quantity > 0 and places(quantity) <= MAX_PLACES
    if usable and (decimal_quantity or is_integral(quantity)):
        for target in (exact_minor, Decimal(amount)):
            try:
                unit = (target / quantity).quantize(UNIT_PLACES, rounding=ROUND_HALF_UP)
            except InvalidOperation:
                continue  # a tiny quantity: the unit price needs more digits than Decimal holds
            if _rounds_to(unit, quantity, amount):
                return quantity, plain(unit)
    whole = exact_minor.quantize(UNIT_PLACES, rounding=ROUND_HALF_UP)
    if not _rounds_to(whole, _ONE, amount):
        whole = Decimal(amount)  # the amount was rounded to the currency's step
    return _ONE, plain(whole)


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
        each = item.subtotal / item.quantity
        if each.adjusted() > 15:  # 12 more places would exceed Decimal's 28 digits
            return each
        return each.quantize(UNIT_PLACES, rounding=ROUND_HALF_UP)
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
    decimal_quantities: bool,
    always_show: bool,
    fallback: Period | None,
    metadata: Mapping[str, str],
) -> PlannedLine:
    """`decimal_mode`: the bill has non-integer quantities and they are not sent as such,
    so every line is quantity 1 (a quantity column mixing real and placeholder quantities
    would mislead). `decimal_quantities`: non-integer quantities go in `quantity_decimal`."""
    amount = to_stripe_minor_units(item.subtotal, currency)
    quantity: Decimal | None = None
    unit: Decimal | None = None
    if product is not None and amount >= 0 and item.subtotal >= 0:
        # A Price cannot be negative: credits stay `amount` lines.
        exact = to_minor_decimal(item.subtotal, currency)
        quantity, unit = (
            price(exact, _ONE, amount, decimal_quantity=False)
            if decimal_mode
            else price(exact, item.quantity, amount, decimal_quantity=decimal_quantities)
        )
    shown = quantity if quantity is not None else _ONE
    show = always_show or decimal_mode or item.quantity != shown
    integral = quantity is not None and is_integral(quantity)
    return PlannedLine(
        key=item.id,
        description=describe(item, currency, show),
        amount=amount,
        product=product if quantity is not None else None,
        quantity=int(quantity) if quantity is not None and integral else None,
        unit_amount_decimal=unit,
        period=period(item.service_period_start_date, item.service_period_end_date) or fallback,
        metadata=dict(metadata),
        quantity_decimal=plain(quantity) if quantity is not None and not integral else None,
    )
