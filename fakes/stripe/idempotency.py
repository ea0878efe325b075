"""Stripe's idempotency layer (API v1).

A POST with an ``Idempotency-Key`` whose endpoint began executing has its status and body
saved for 24 hours (errors included, 500s too); a retry with the same key, endpoint and
parameters gets the saved response back with ``Idempotent-Replayed: true`` and nothing runs
again. The same key with another endpoint or other parameters is an ``idempotency_error``;
a key whose first request is still running is a 409 ``idempotency_key_in_use``. Requests
refused before execution (401, 429, parameter validation) are not saved. Keys are scoped
per API key and connected account.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import StripeError

Scope = tuple[str, str | None]


@dataclass(frozen=True)
class Record:
    method: str
    path: str
    params: dict[str, Any]
    status: int
    body: bytes
    headers: dict[str, str]
    request_id: str
    saved_at: float


class IdempotencyStore:
    def __init__(self, clock: Callable[[], float], ttl: Callable[[], float]) -> None:
        self.clock = clock
        self.ttl = ttl
        self.records: dict[tuple[Scope, str], Record] = {}
        self.in_flight: set[tuple[Scope, str]] = set()

    def reset(self) -> None:
        self.records.clear()
        self.in_flight.clear()

    def check(
        self, scope: Scope, key: str, method: str, path: str, params: dict[str, Any]
    ) -> Record | None:
        """The saved response to replay, ``None`` to execute, or an idempotency error."""
        if len(key) > 255:
            raise StripeError(
                400, "Idempotency keys can be at most 255 characters long.", stage="pre"
            )
        record = self.records.get((scope, key))
        if record is not None and self.clock() - record.saved_at >= self.ttl():
            del self.records[(scope, key)]
            record = None
        if record is None:
            if (scope, key) in self.in_flight:
                raise StripeError(
                    409,
                    "There is currently another in-progress request using this idempotent "
                    "key (that probably means you submitted twice, and the other request is "
                    f"still going through): {key}. Please try again later.",
                    code="idempotency_key_in_use",
                    stage="pre",
                )
            return None
        if (record.method, record.path) != (method, path):
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{record.method} {record.path}' vs '{method} {path}'). Try "
                f"using a key other than '{key}' if you meant to execute a different request.",
                type="idempotency_error",
                stage="pre",
            )
        if record.params != params:
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                type="idempotency_error",
                stage="pre",
            )
        return record

    def reserve(self, scope: Scope, key: str) -> None:
        self.in_flight.add((scope, key))

    def release(self, scope: Scope, key: str) -> None:
        self.in_flight.discard((scope, key))

    def save(self, scope: Scope, key: str, record: Record) -> None:
        self.records[(scope, key)] = record
