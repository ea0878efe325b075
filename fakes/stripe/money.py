"""Currency helpers: validation, minor units and Stripe-style amount formatting."""

from __future__ import annotations

import re
from decimal import Decimal

from .errors import invalid

ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())

_CURRENCY = re.compile(r"^[a-z]{3}$")


def check_currency(value: str, param: str) -> str:
    code = value.lower()
    if not _CURRENCY.match(code):
        raise invalid(f"Invalid currency: {value}.", param=param)
    return code


def exponent(currency: str) -> int:
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def format_amount(amount: int, currency: str) -> str:
    """``99999999 usd`` -> ``$999,999.99``; other currencies as ``999,999.99 EUR``."""
    digits = exponent(currency)
    major = Decimal(amount).scaleb(-digits)
    text = f"{major:,.{digits}f}"
    return f"${text}" if currency == "usd" else f"{text} {currency.upper()}"
