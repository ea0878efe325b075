"""The in-memory store: one namespace per (mode, connected account)."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]
PLATFORM = "platform"

_ALPHABET = string.ascii_letters + string.digits


@dataclass
class Namespace:
    livemode: bool
    account: str | None
    customers: dict[str, JSON] = field(default_factory=dict)
    # Fake-only customer flags (e.g. ``payment_fails``), kept off the Stripe object.
    customer_flags: dict[str, JSON] = field(default_factory=dict)
    invoices: dict[str, JSON] = field(default_factory=dict)  # without ``lines``
    invoice_items: dict[str, JSON] = field(default_factory=dict)
    line_ids: dict[str, str] = field(default_factory=dict)  # invoice item -> line item id
    invoice_lines: dict[str, list[str]] = field(default_factory=dict)  # invoice -> items
    # Seen by search only once ``searchable_at`` has passed (Stripe's index lags writes).
    searchable_at: dict[str, float] = field(default_factory=dict)
    invoice_sequence: dict[str, int] = field(default_factory=dict)
    events: list[JSON] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.account or PLATFORM


class Store:
    def __init__(self, clock: Callable[[], float], seed: int | None = None) -> None:
        self.clock = clock
        self._rng = random.Random(seed)
        self.namespaces: dict[tuple[bool, str | None], Namespace] = {}

    def ns(self, livemode: bool, account: str | None) -> Namespace:
        key = (livemode, account)
        if key not in self.namespaces:
            self.namespaces[key] = Namespace(livemode=livemode, account=account)
        return self.namespaces[key]

    def other_mode_has(self, livemode: bool, account: str | None, kind: str, ident: str) -> bool:
        other = self.namespaces.get((not livemode, account))
        return other is not None and ident in getattr(other, kind)

    def new_id(self, prefix: str, length: int = 24) -> str:
        return prefix + "_" + "".join(self._rng.choice(_ALPHABET) for _ in range(length))

    def now(self) -> int:
        return int(self.clock())

    def reset(self) -> None:
        self.namespaces.clear()
