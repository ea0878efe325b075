"""Deterministic Idempotency-Keys.

`billsync-<step>-<sha256("<config>|<bill>|<version>|<step>|<parts...>")[:48]>`: a retry of
the same delivery sends the same key, so Stripe answers with what it already did. Steps on
an existing invoice name the invoice (and what they change), so a later delivery that
changes the invoice again never collides with a key Stripe still remembers (24 h).

Stripe (API v1) also saves a 500 and replays it for 24 h: an attempt after a 5xx or no
answer looks the invoice up first and then adds a fresh generation to its keys (`Flow`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()[:48]


def idempotency_key(config_id: str, bill_id: str, version: int, step: str, *parts: str) -> str:
    return f"billsync-{step}-{_hash('|'.join([config_id, bill_id, str(version), step, *parts]))}"


def ids_hash(ids: Iterable[str]) -> str:
    return _hash(",".join(sorted(ids)))[:16]
