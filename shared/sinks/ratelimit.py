"""Per-credential rate limiting at the provider's published rate, adaptive on 429.

Built on aiolimiter's leaky bucket, refilled in 100 ms slices so a burst never exceeds a
tenth of the per-second budget (providers count in sliding windows)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

_SLICES = 10


@dataclass(frozen=True)
class RateSpec:
    per_second: float | None  # whole credential; None = unlimited
    per_endpoint_per_second: float | None = None
    safety: float = 0.95  # run just under the published limit


def _limiter(rate: float) -> AsyncLimiter:
    """A bucket holding a tenth of a second's budget, but at least one request."""
    capacity = max(rate / _SLICES, 1.0)
    return AsyncLimiter(capacity, capacity / rate)


class AdaptiveRateLimiter:
    """acquire() before every provider call; on_rate_limited() when a 429 arrives anyway
    (another client shares the quota): slow to half for a while and honour Retry-After."""

    def __init__(self, spec: RateSpec, recovery_seconds: float = 10.0) -> None:
        self.spec = spec
        self._recovery = recovery_seconds
        self._factor = 1.0
        self._slowed_until = 0.0
        self._blocked_until = 0.0
        self._global = _limiter(spec.per_second * spec.safety) if spec.per_second else None
        self._endpoints: dict[str, AsyncLimiter] = {}

    @property
    def current_rate(self) -> float | None:
        if self.spec.per_second is None:
            return None
        return self.spec.per_second * self.spec.safety * self._factor

    async def acquire(self, endpoint: str) -> float:
        """Wait for a slot; returns the seconds spent waiting."""
        started = time.monotonic()
        self._maybe_recover(started)
        pause = self._blocked_until - started
        if pause > 0:
            await asyncio.sleep(pause)
        if self._global is not None:
            await self._global.acquire()
        if self.spec.per_endpoint_per_second:
            limiter = self._endpoints.get(endpoint)
            if limiter is None:
                rate = self.spec.per_endpoint_per_second * self.spec.safety
                limiter = self._endpoints[endpoint] = _limiter(rate)
            await limiter.acquire()
        return time.monotonic() - started

    def on_rate_limited(self, retry_after: float | None) -> None:
        now = time.monotonic()
        self._blocked_until = max(self._blocked_until, now + (retry_after or 1.0))
        if self.spec.per_second and self._factor > 0.25:
            self._factor /= 2
            self._global = _limiter(self.spec.per_second * self.spec.safety * self._factor)
        self._slowed_until = now + self._recovery

    def _maybe_recover(self, now: float) -> None:
        if self._factor < 1.0 and now >= self._slowed_until and self.spec.per_second:
            self._factor = min(1.0, self._factor * 2)
            self._global = _limiter(self.spec.per_second * self.spec.safety * self._factor)
            self._slowed_until = now + self._recovery
