"""shared.money: minor units per currency and plain notation, Decimal only (Stripe's limits:
test_stripe_money.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.money import (
    THREE_DECIMAL,
    ZERO_DECIMAL,
    format_decimal,
    from_minor_units,
    minor_unit_exponent,
    plain_decimal,
    to_minor_decimal,
    to_minor_units,
)

MAX_MINOR = 10**10
CURRENCIES = sorted(ZERO_DECIMAL | THREE_DECIMAL | {"USD", "EUR", "GBP", "CAD", "AUD"})


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [
        ("JPY", 0),
        ("krw", 0),
        ("VND", 0),
        ("XPF", 0),
        ("BHD", 3),
        ("kwd", 3),
        ("TND", 3),
        ("USD", 2),
        ("eur", 2),
        ("GBP", 2),
        ("CHF", 2),
    ],
)
def test_exponent(currency: str, exponent: int) -> None:
    assert minor_unit_exponent(currency) == exponent


def test_exponent_lists_are_stripes() -> None:
    assert {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    } == ZERO_DECIMAL
    assert {"BHD", "JOD", "KWD", "OMR", "TND"} == THREE_DECIMAL


@pytest.mark.parametrize("bad", ["", "US", "USDX", "12$"])
def test_bad_currency(bad: str) -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        minor_unit_exponent(bad)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("1.005", "USD", 101),
        ("1.004", "USD", 100),
        ("-1.005", "USD", -101),
        ("1234.56", "USD", 123456),
        ("1500", "JPY", 1500),
        ("1500.5", "JPY", 1501),
        ("1.2345", "BHD", 1235),
        ("0.001", "KWD", 1),
        ("999999.99", "USD", 99_999_999),
        ("0", "EUR", 0),
    ],
)
def test_to_minor_units_half_up(amount: str, currency: str, minor: int) -> None:
    assert to_minor_units(Decimal(amount), currency) == minor


def test_to_minor_decimal_keeps_fractions() -> None:
    assert to_minor_decimal(Decimal("1218.805"), "USD") == Decimal("121880.5")
    assert to_minor_decimal(Decimal("7"), "JPY") == Decimal("7")


def test_from_minor_units() -> None:
    assert from_minor_units(101, "USD") == Decimal("1.01")
    assert str(from_minor_units(101, "USD")) == "1.01"
    assert str(from_minor_units(1500, "JPY")) == "1500"
    assert str(from_minor_units(1235, "BHD")) == "1.235"
    assert str(from_minor_units(-5, "EUR")) == "-0.05"


def test_float_is_refused() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        to_minor_units(0.1, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        to_minor_units(True, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        from_minor_units(1.0, "USD")  # type: ignore[arg-type]


def test_format_decimal() -> None:
    assert format_decimal(Decimal("1523.50"), grouping=True) == "1,523.5"
    assert format_decimal(Decimal("1E+3")) == "1000"
    assert format_decimal(Decimal("0.800")) == "0.8"
    assert format_decimal(Decimal("-0.00")) == "0"


amounts = st.decimals(
    min_value=Decimal("-999999.999"),
    max_value=Decimal("999999.999"),
    allow_nan=False,
    allow_infinity=False,
    places=3,
)


@given(
    minor=st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR),
    currency=st.sampled_from(CURRENCIES),
)
def test_round_trip_from_minor(minor: int, currency: str) -> None:
    major = from_minor_units(minor, currency)
    assert isinstance(major, Decimal)
    assert to_minor_units(major, currency) == minor


@given(amount=amounts, currency=st.sampled_from(CURRENCIES))
def test_round_trip_is_within_half_a_minor_unit(amount: Decimal, currency: str) -> None:
    minor = to_minor_units(amount, currency)
    assert isinstance(minor, int)
    back = from_minor_units(minor, currency)
    assert isinstance(back, Decimal)
    half = Decimal(1).scaleb(-minor_unit_exponent(currency)) / 2
    assert abs(back - amount) <= half


@given(amount=amounts, currency=st.sampled_from(CURRENCIES))
def test_never_float(amount: Decimal, currency: str) -> None:
    assert type(to_minor_decimal(amount, currency)) is Decimal
    assert type(from_minor_units(to_minor_units(amount, currency), currency)) is Decimal


# ---- plain notation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1E-9", "0.000000001"),
        ("0.000000000001", "0.000000000001"),
        ("1E+3", "1000"),
        ("33.3300", "33.33"),
        ("-0.0", "0"),
    ],
)
def test_plain_decimal_never_uses_exponent_notation(value: str, text: str) -> None:
    plain = plain_decimal(Decimal(value))
    assert str(plain) == text
    assert plain == Decimal(value)
    assert isinstance(plain, Decimal)


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**20), max_value=10**20))
def test_plain_decimal_property(value: Decimal) -> None:
    text = str(plain_decimal(value))
    assert "E" not in text.upper()
    assert Decimal(text) == value
