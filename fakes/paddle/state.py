"""What the local Paddle holds: customers, addresses, businesses, products, transactions.

Objects are stored in Paddle's response shape (dicts), in creation order."""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]
_ALPHABET = string.ascii_lowercase + string.digits


def new_id(prefix: str) -> str:
    """Paddle ids: a prefix and 26 lowercase letters and digits (`txn_01h...`)."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(26))


@dataclass
class Store:
    clock: Callable[[], float]
    customers: dict[str, JSON] = field(default_factory=dict)
    addresses: dict[str, JSON] = field(default_factory=dict)
    businesses: dict[str, JSON] = field(default_factory=dict)
    products: dict[str, JSON] = field(default_factory=dict)
    transactions: dict[str, JSON] = field(default_factory=dict)
    _tick: int = 0
    invoice_seq: int = 0

    def reset(self) -> None:
        for table in (
            self.customers,
            self.addresses,
            self.businesses,
            self.products,
            self.transactions,
        ):
            table.clear()
        self.invoice_seq = 0

    def timestamp(self) -> str:
        """RFC 3339 with microseconds, strictly increasing (ordering by created_at is
        stable even for two objects made in the same microsecond)."""
        self._tick += 1
        micros = int(self.clock() * 1_000_000) + self._tick
        moment = datetime.fromtimestamp(micros / 1_000_000, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
