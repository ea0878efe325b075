"""GET /v1/balance: the cheap authenticated call billsync makes to verify a key (and its
mode, from `livemode`) when a configuration is connected. Amounts are always zero here."""

from __future__ import annotations

from typing import Any

from .context import Ctx, Endpoint
from .state import JSON
from .validation import EXPAND, Obj


def retrieve_balance(ctx: Ctx, params: dict[str, Any]) -> JSON:
    return {
        "object": "balance",
        "available": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
        "pending": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
        "livemode": ctx.ns.livemode,
    }


ENDPOINTS = [Endpoint("GET", "/v1/balance", Obj({"expand": EXPAND}), retrieve_balance)]
