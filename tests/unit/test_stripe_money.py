"""Stripe's money limits (services/stripe_sink/money.py), registered as its MoneyLimits."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.stripe_sink.money import (
    LIMITS,
    STRIPE_MAX_MINOR_UNITS,
    stripe_amount_step,
    stripe_minimum_charge,
    stripe_minimum_charge_minor,
    to_stripe_minor_units,
    within_stripe_maximum,
)
from shared.money import THREE_DECIMAL, ZERO_DECIMAL, to_minor_decimal
from shared.sinks import registry

CURRENCIES = sorted(ZERO_DECIMAL | THREE_DECIMAL | {"USD", "EUR", "GBP", "CAD", "AUD"})
amounts = st.decimals(
    min_value=Decimal("-999999.999"),
    max_value=Decimal("999999.999"),
    allow_nan=False,
    allow_infinity=False,
    places=3,
)


def test_limits_are_registered_from_the_stripe_package() -> None:
    assert registry.money_limits("stripe") is LIMITS
    assert LIMITS.max_minor_units == STRIPE_MAX_MINOR_UNITS
    assert LIMITS.minimum_charge["USD"] == Decimal("0.50")
    assert LIMITS.amount_step["KWD"] == 10


def test_minimum_charges() -> None:
    assert stripe_minimum_charge("USD") == Decimal("0.50")
    assert stripe_minimum_charge("eur") == Decimal("0.50")
    assert stripe_minimum_charge("GBP") == Decimal("0.30")
    assert stripe_minimum_charge("JPY") == Decimal("50")
    assert stripe_minimum_charge("CAD") == Decimal("0.50")
    assert stripe_minimum_charge("AUD") == Decimal("0.50")
    assert stripe_minimum_charge("HUF") == Decimal("175.00")
    assert stripe_minimum_charge("BHD") is None
    assert stripe_minimum_charge_minor("USD") == 50
    assert stripe_minimum_charge_minor("JPY") == 50
    assert stripe_minimum_charge_minor("GBP") == 30
    # None published: the smallest amount Stripe accepts (last digit 0: 0.010 BHD).
    assert stripe_minimum_charge_minor("BHD") == 10
    assert stripe_minimum_charge_minor("KWD") == 10
    assert stripe_minimum_charge_minor("COP") == 1


def test_maximum() -> None:
    assert STRIPE_MAX_MINOR_UNITS == 99_999_999
    assert within_stripe_maximum(99_999_999)
    assert within_stripe_maximum(-99_999_999)
    assert not within_stripe_maximum(100_000_000)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("5.124", "KWD", 5120),  # Stripe's own example: 5120 or 5130
        ("5.125", "KWD", 5130),
        ("-5.125", "BHD", -5130),
        ("1.2345", "JOD", 1230),
        ("0.004", "OMR", 0),
        ("0.005", "TND", 10),
        ("5.5", "ISK", 600),  # two decimals that must be 00
        ("1.005", "USD", 101),
        ("1500.5", "JPY", 1501),
    ],
)
def test_to_stripe_minor_units_rounds_to_stripes_step(
    amount: str, currency: str, minor: int
) -> None:
    assert to_stripe_minor_units(Decimal(amount), currency) == minor


def test_amount_steps() -> None:
    assert {c: stripe_amount_step(c) for c in sorted(THREE_DECIMAL)} == dict.fromkeys(
        sorted(THREE_DECIMAL), 10
    )
    assert stripe_amount_step("isk") == 100
    assert stripe_amount_step("USD") == stripe_amount_step("JPY") == 1


@given(amount=amounts, currency=st.sampled_from([*CURRENCIES, "ISK"]))
def test_stripe_minor_units_are_a_multiple_of_the_step_and_nearest(
    amount: Decimal, currency: str
) -> None:
    minor = to_stripe_minor_units(amount, currency)
    step = stripe_amount_step(currency)
    assert minor % step == 0
    assert abs(Decimal(minor) - to_minor_decimal(amount, currency)) <= Decimal(step) / 2
