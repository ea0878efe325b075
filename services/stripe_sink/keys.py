"""Deterministic Idempotency-Keys.

`billsync-<step>-<sha256("<config>|<bill>|<version>|<step>|<parts...>")[:48]>`: a retry of
the same delivery sends the same key, so Stripe answers with what it already did. Steps on
an existing invoice name the invoice (and what they change), so a later delivery that
changes the invoice again never collides with a key Stripe still remembers (24 h).

Stripe (API v1) also saves a 500 and replays it for 24 h. Once billsync has looked at the
invoice's real state, a replayed 5xx moves on to `rotate(key, original request id)`:
still deterministic, never a duplicate (the state check came first)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()[:48]


def idempotency_key(config_id: str, bill_id: str, version: int, step: str, *parts: str) -> str:
    return f"billsync-{step}-{_hash('|'.join([config_id, bill_id, str(version), step, *parts]))}"


def rotate(key: str, original_request: str) -> str:
    step = key.split("-")[1] if key.count("-") >= 2 else "write"
    return f"billsync-{step}-{_hash(f'{key}|after|{original_request}')}"


def ids_hash(ids: Iterable[str]) -> str:
    return _hash(",".join(sorted(ids)))[:16]
