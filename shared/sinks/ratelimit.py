"""Per-credential rate limiting at the provider's published rate, adaptive on 429.

Built on aiolimiter's leaky bucket with room for a single request, so requests are evenly
spaced: providers count in sliding one-second windows, and a burst allowance on top of the
steady rate is exactly what tips such a window over the limit."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiolimiter import AsyncLimiter


@dataclass(frozen=True)
class RateSpec:
    per_second: float | None  # whole credential; None = unlimited
    per_endpoint_per_second: float | None = None
    safety: float = 0.95  # run just under the published limit


def _limiter(rate: float) -> AsyncLimiter:
    return AsyncLimiter(1, 1 / rate)


class AdaptiveRateLimiter:
    """acquire() before every provider call; on_rate_limited() when a 429 arrives anyway.
    Retry-After is always honoured; when 429s keep coming (another client shares the
    quota) the rate backs off by a fifth at most once per second (concurrent calls see the
    same burst) and creeps back up by a tenth every `recovery_seconds` without 429s."""

    SLOW_DOWN = 0.8
    SUSTAINED = 10.0
    SPEED_UP = 1.1
    FLOOR = 0.25

    def __init__(self, spec: RateSpec, recovery_seconds: float = 3.0) -> None:
        self.spec = spec
        self._recovery = recovery_seconds
        self._factor = 1.0
        self._last_slowdown = -1e9
        self._last_429 = -1e9
        self._next_recovery = 0.0
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

    def release(self) -> None:
        """A call ended (this limiter bounds no concurrency)."""

    def observe(self, headers: object) -> None:
        """Rate headers are not used by the per-second limiter."""

    def on_rate_limited(self, retry_after: float | None) -> None:
        """Honour Retry-After always; slow down only when 429s keep coming (a lone one is
        timing jitter at the window's edge, a second within `SUSTAINED` seconds means the
        quota really is shared)."""
        now = time.monotonic()
        self._blocked_until = max(self._blocked_until, now + (retry_after or 1.0))
        self._next_recovery = now + self._recovery
        sustained = now - self._last_429 <= self.SUSTAINED
        self._last_429 = now
        if sustained and self.spec.per_second and now - self._last_slowdown >= 1.0:
            self._last_slowdown = now
            self._set_factor(max(self.FLOOR, self._factor * self.SLOW_DOWN))

    def _maybe_recover(self, now: float) -> None:
        if self._factor < 1.0 and now >= self._next_recovery:
            self._next_recovery = now + self._recovery
            self._set_factor(min(1.0, self._factor * self.SPEED_UP))

    def _set_factor(self, factor: float) -> None:
        self._factor = factor
        if self.spec.per_second:
            self._global = _limiter(self.spec.per_second * self.spec.safety * factor)
