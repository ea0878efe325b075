"""Request statistics readable by tests (``FakeStripe.stats``, ``GET /_fake/stats``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .ratelimit import Admission


@dataclass
class EndpointStats:
    requests: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    idempotent_replays: int = 0
    max_admitted_per_second: int = 0
    max_offered_per_second: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "rate_limited": self.rate_limited,
            "idempotent_replays": self.idempotent_replays,
            "max_admitted_per_second": self.max_admitted_per_second,
            "max_offered_per_second": self.max_offered_per_second,
        }


@dataclass
class Stats:
    requests: int = 0
    rate_limited: int = 0
    idempotent_replays: int = 0
    injected_errors: int = 0
    dropped_before_commit: int = 0
    dropped_after_commit: int = 0
    max_admitted_per_second: int = 0
    max_offered_per_second: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    endpoints: dict[str, EndpointStats] = field(default_factory=dict)

    def endpoint(self, name: str) -> EndpointStats:
        return self.endpoints.setdefault(name, EndpointStats())

    def request(self, name: str) -> None:
        self.requests += 1
        self.endpoint(name).requests += 1

    def status(self, name: str, status: int | str) -> None:
        self.by_status[str(status)] += 1
        self.endpoint(name).by_status[str(status)] += 1

    def windows(self, name: str, admission: Admission) -> None:
        glob, ep = admission.admitted, admission.admitted_endpoint
        offered, offered_ep = admission.offered, admission.offered_endpoint
        stats = self.endpoint(name)
        self.max_admitted_per_second = max(self.max_admitted_per_second, glob)
        self.max_offered_per_second = max(self.max_offered_per_second, offered)
        stats.max_admitted_per_second = max(stats.max_admitted_per_second, ep)
        stats.max_offered_per_second = max(stats.max_offered_per_second, offered_ep)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "idempotent_replays": self.idempotent_replays,
            "injected_errors": self.injected_errors,
            "dropped_before_commit": self.dropped_before_commit,
            "dropped_after_commit": self.dropped_after_commit,
            "max_admitted_per_second": self.max_admitted_per_second,
            "max_offered_per_second": self.max_offered_per_second,
            "by_status": dict(self.by_status),
            "endpoints": {name: s.to_json() for name, s in sorted(self.endpoints.items())},
        }
