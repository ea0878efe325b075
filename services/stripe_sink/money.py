"""Stripe's money limits (registered as the Stripe destination's MoneyLimits, plugin.py):
the maximum amount, the minimum charge per currency and the amount step of three-decimal
currencies and ISK. Currency-generic arithmetic (minor units) is shared.money."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from shared.money import THREE_DECIMAL, currency_code, to_minor_decimal
from shared.sinks.registry import MoneyLimits

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

LIMITS = MoneyLimits(
    max_minor_units=STRIPE_MAX_MINOR_UNITS,
    minimum_charge=STRIPE_MINIMUM_CHARGE,
    amount_step=STRIPE_AMOUNT_STEP,
)


def stripe_amount_step(currency: str) -> int:
    """The minor units every Stripe amount in this currency is a multiple of (1 mostly)."""
    return LIMITS.amount_step.get(currency_code(currency), 1)


def to_stripe_minor_units(amount: Decimal, currency: str) -> int:
    """Major units -> the integer minor units Stripe accepts: half away from zero to the
    currency's step (5.124 KWD -> 5120, 5.125 KWD -> 5130, 1.005 USD -> 101)."""
    step = stripe_amount_step(currency)
    steps = to_minor_decimal(amount, currency) / step
    return int(steps.quantize(Decimal(1), rounding=ROUND_HALF_UP)) * step


def stripe_minimum_charge(currency: str) -> Decimal | None:
    """Stripe's minimum charge in major units, or None where Stripe publishes none."""
    return LIMITS.minimum_charge.get(currency_code(currency))


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
