"""Currency helpers: minor units and Stripe's charge limits, in Decimal only.

A float never touches money here: `to_minor_units` refuses one, so a stray float is a
TypeError at the boundary instead of a rounding error on an invoice."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())

# Stripe: amounts are at most 8 digits of minor units (999,999.99 USD).
STRIPE_MAX_MINOR_UNITS = 99_999_999

# Stripe (docs.stripe.com/currencies#three-decimal): amounts in three-decimal currencies
# "require the least-significant (last) digit to be 0. Your integration must round amounts
# to the nearest ten" (5.124 KWD -> 5120 or 5130). ISK (#special-cases) is sent with two
# decimals that must be 00 (5 ISK -> 500). An amount Stripe accepts is a multiple of this.
STRIPE_AMOUNT_STEP: dict[str, int] = {code: 10 for code in THREE_DECIMAL} | {"ISK": 100}

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


def stripe_amount_step(currency: str) -> int:
    """The minor units every Stripe amount in this currency is a multiple of (1 mostly)."""
    return STRIPE_AMOUNT_STEP.get(_code(currency), 1)


def to_stripe_minor_units(amount: Decimal, currency: str) -> int:
    """Major units -> the integer minor units Stripe accepts: half away from zero to the
    currency's step (5.124 KWD -> 5120, 5.125 KWD -> 5130, 1.005 USD -> 101)."""
    step = stripe_amount_step(currency)
    steps = to_minor_decimal(amount, currency) / step
    return int(steps.quantize(Decimal(1), rounding=ROUND_HALF_UP)) * step


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
    """The minimum in minor units. Where Stripe publishes none (the charge must meet the
    settlement currency's minimum after conversion, which is not knowable here) it is the
    smallest amount Stripe accepts: 1 minor unit, 10 for three-decimal currencies (0.010
    KWD: the last digit must be 0), 100 for ISK."""
    minimum = stripe_minimum_charge(currency)
    if minimum is None:
        return stripe_amount_step(currency)
    return to_stripe_minor_units(minimum, currency)


def within_stripe_maximum(minor_units: int) -> bool:
    return abs(minor_units) <= STRIPE_MAX_MINOR_UNITS


class PlainDecimal(Decimal):
    """A Decimal whose str() never uses exponent notation. The stripe SDK form-encodes
    decimals with str(), and str(Decimal("0.000000001")) is "1E-9", which Stripe refuses."""

    __slots__ = ()

    def __str__(self) -> str:
        return format_decimal(self)

    def __repr__(self) -> str:
        return f"PlainDecimal('{format_decimal(self)}')"


def plain_decimal(value: Decimal) -> PlainDecimal:
    """`value` in plain notation, without trailing zeros (1E-9 -> 0.000000001, 1.50 -> 1.5)."""
    return PlainDecimal(format_decimal(value))


def format_decimal(value: Decimal, *, grouping: bool = False) -> str:
    """Plain notation without exponent or trailing zeros: 1523.50 -> '1523.5' ('1,523.5')."""
    text = format(value, ",f" if grouping else "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
