"""Sliding one-second windows per API key: a global limit per mode and per-endpoint limits."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .config import RateLimitConfig
from .errors import StripeError


@dataclass(frozen=True)
class Admission:
    """Requests in the current one-second window: admitted (global, endpoint) and offered."""

    admitted: int
    admitted_endpoint: int
    offered: int
    offered_endpoint: int
    refused: str | None  # "global-rate" | "endpoint-rate" | None


class Window:
    """Timestamps of the requests seen in the last second."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def count(self, now: float) -> int:
        while self._times and self._times[0] <= now - 1.0:
            self._times.popleft()
        return len(self._times)

    def add(self, now: float) -> int:
        self.count(now)
        self._times.append(now)
        return len(self._times)


def _limit(value: int | None) -> int | None:
    return value if value else None


class RateLimiter:
    def __init__(self, monotonic: Callable[[], float]) -> None:
        self.monotonic = monotonic
        self._global: dict[str, Window] = {}
        self._endpoint: dict[tuple[str, str], Window] = {}
        self._offered: dict[str, Window] = {}
        self._offered_endpoint: dict[tuple[str, str], Window] = {}

    def reset(self) -> None:
        self._global.clear()
        self._endpoint.clear()
        self._offered.clear()
        self._offered_endpoint.clear()

    def admit(
        self, config: RateLimitConfig, api_key: str, livemode: bool, endpoint: str
    ) -> Admission:
        """Count one request against the windows; ``reason`` is set when it is refused."""
        now = self.monotonic()
        offered = self._offered.setdefault(api_key, Window()).add(now)
        offered_ep = self._offered_endpoint.setdefault((api_key, endpoint), Window()).add(now)
        glob = self._global.setdefault(api_key, Window())
        ep = self._endpoint.setdefault((api_key, endpoint), Window())
        if config.enabled:
            global_limit = _limit(config.live_per_second if livemode else config.test_per_second)
            endpoint_limit = _limit(
                config.endpoint_overrides.get(endpoint, config.endpoint_per_second or 0)
            )
            reason = None
            if global_limit is not None and glob.count(now) >= global_limit:
                reason = "global-rate"
            elif endpoint_limit is not None and ep.count(now) >= endpoint_limit:
                reason = "endpoint-rate"
            if reason is not None:
                return Admission(glob.count(now), ep.count(now), offered, offered_ep, reason)
        return Admission(glob.add(now), ep.add(now), offered, offered_ep, None)


def rate_limited(retry_after: float, reason: str = "global-rate") -> StripeError:
    seconds = int(retry_after) if float(retry_after).is_integer() else retry_after
    return StripeError(
        429,
        "Request rate limit exceeded. You can learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        code="rate_limit",
        stage="pre",
        headers={"Retry-After": str(seconds), "Stripe-Rate-Limited-Reason": reason},
    )
