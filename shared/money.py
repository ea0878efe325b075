"""Currency helpers, for every destination: minor units per currency (ISO 4217) and plain
Decimal notation. A provider's own limits (Stripe's maximum, minimum charges and amount
steps) live in its package and are registered as its MoneyLimits (shared/sinks/registry.py).

A float never touches money here: `to_minor_units` refuses one, so a stray float is a
TypeError at the boundary instead of a rounding error on an invoice."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())


def currency_code(currency: str) -> str:
    """The ISO 4217 code, upper case (refused when it is not three letters)."""
    code = currency.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"not an ISO 4217 currency code: {currency!r}")
    return code


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point in the currency's minor unit (JPY 0, BHD 3, USD 2)."""
    code = currency_code(currency)
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
