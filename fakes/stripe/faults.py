"""Fault injection with a seeded RNG: latency, 5xx, and dropped connections.

Only ``/v1`` requests are eligible (never the ``/_fake`` control endpoints). Rules ("fail the
next N requests under this path prefix") are consumed first, then the random rates are
drawn in a fixed order, each only when its rate is above zero, so a seed replays the same
sequence of faults for the same sequence of requests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fakes.common.faults import take_rule

from .config import FaultConfig
from .errors import StripeError
from .ratelimit import rate_limited


@dataclass(frozen=True)
class Decision:
    action: str | None  # None | "status" | "drop_before_commit" | "drop_after_commit"
    status: int = 500
    replayed: bool = True


NONE = Decision(None)


class FaultInjector:
    def __init__(self, seed: int | None) -> None:
        self.rng = random.Random(seed)

    def reseed(self, seed: int | None) -> None:
        self.rng = random.Random(seed)

    def latency(self, config: FaultConfig) -> float:
        """Seconds to wait before handling the request."""
        millis = config.latency_ms
        if config.latency_jitter_ms > 0:
            millis += self.rng.uniform(0, config.latency_jitter_ms)
        return max(millis, 0.0) / 1000.0

    def decide(self, config: FaultConfig, method: str, path: str) -> Decision:
        rule = take_rule(config.rules, method, path)
        if rule is not None:
            replayed = config.errors_replayed if rule.replayed is None else rule.replayed
            return Decision(rule.action, rule.status, replayed)
        config.rules = [r for r in config.rules if r.count > 0]
        if self._draw(config.drop_before_commit_rate):
            return Decision("drop_before_commit")
        if self._draw(config.error_rate):
            return Decision("status", config.error_status, config.errors_replayed)
        if self._draw(config.drop_after_commit_rate):
            return Decision("drop_after_commit")
        return NONE

    def _draw(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate


def injected_error(status: int, retry_after: float) -> StripeError:
    """The error body an injected status carries (saved or not is the caller's business)."""
    if status == 429:
        return rate_limited(retry_after)
    if status >= 500:
        return StripeError(
            status,
            "An unknown error occurred (injected by the fake Stripe).",
            type="api_error",
        )
    return StripeError(status, f"Injected failure with status {status}.")
