"""Currency helpers: minor units and Stripe's charge limits, in Decimal only.

A float never touches money here: `to_minor_units` refuses one, so a stray float is a
TypeError at the boundary instead of a rounding error on an invoice."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())

# Stripe: amounts are at most 8 digits of minor units (999,999.99 USD).
STRIPE_MAX_MINOR_UNITS = 99_999_999

# Stripe's published minimum charge per presentment currency, in major units
# (docs.stripe.com/currencies#minimum-and-maximum-charge-amounts). Other currencies have
# the equivalent of 0.50 USD in the settlement currency, which is not knowable here.
_MINIMUMS = """
    USD 0.50  AED 2.00  AUD 0.50  BGN 1.00  BRL 0.50  CAD 0.50  CHF 0.50  CZK 15.00
    DKK 2.50  EUR 0.50  GBP 0.30  HKD 4.00  HUF 175.00  INR 0.50  JPY 50  MXN 10
    MYR 2  NOK 3.00  NZD 0.50  PLN 2.00  RON 2.00  SEK 3.00  SGD 0.50  THB 10
"""
_PAIRS = _MINIMUMS.split()
STRIPE_MINIMUM_CHARGE: dict[str, Decimal] = {
    code: Decimal(amount) for code, amount in zip(_PAIRS[::2], _PAIRS[1::2], strict=True)
}


def _code(currency: str) -> str:
    code = currency.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"not an ISO 4217 currency code: {currency!r}")
    return code


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point in the currency's minor unit (JPY 0, BHD 3, USD 2)."""
    code = _code(currency)
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def _require_decimal(amount: object) -> Decimal:
    # bool is an int subclass and would silently become 0 or 1.
    if isinstance(amount, Decimal):
        return amount
    if isinstance(amount, int) and not isinstance(amount, bool):
        return Decimal(amount)
    raise TypeError(f"money must be Decimal (or int), not {type(amount).__name__}")


def to_minor_decimal(amount: Decimal, currency: str) -> Decimal:
    """The exact amount in minor units, fractions kept (for unit_amount_decimal)."""
    return _require_decimal(amount).scaleb(minor_unit_exponent(currency))


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Major units -> integer minor units, half away from zero (1.005 USD -> 101)."""
    exact = to_minor_decimal(amount, currency)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_minor_units(amount: int, currency: str) -> Decimal:
    """Integer minor units -> major units with the currency's exponent (101 USD -> 1.01)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"minor units must be int, not {type(amount).__name__}")
    exponent = minor_unit_exponent(currency)
    return Decimal(amount).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


def stripe_minimum_charge(currency: str) -> Decimal | None:
    """Stripe's minimum charge in major units, or None where Stripe publishes none."""
    return STRIPE_MINIMUM_CHARGE.get(_code(currency))


def stripe_minimum_charge_minor(currency: str) -> int:
    """The minimum in minor units; 1 where Stripe publishes none (anything positive)."""
    minimum = stripe_minimum_charge(currency)
    return 1 if minimum is None else to_minor_units(minimum, currency)


def within_stripe_maximum(minor_units: int) -> bool:
    return abs(minor_units) <= STRIPE_MAX_MINOR_UNITS


def format_decimal(value: Decimal, *, grouping: bool = False) -> str:
    """Plain notation without exponent or trailing zeros: 1523.50 -> '1523.5' ('1,523.5')."""
    text = format(value, ",f" if grouping else "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
