"""Per-credential rate limiting at the provider's published rate, adaptive on 429.

Every request reserves its own time slot, evenly spaced at the current rate (providers
count in sliding one-second windows, and a burst allowance on top of the steady rate is
exactly what tips such a window over the limit). There is one limiter per credential for
the life of the process and a slow-down changes its spacing in place: callers already
waiting keep their reserved slots, later ones queue behind them, so no second schedule
can release at the same time as the first. A 429's Retry-After blocks every caller: one
whose slot comes before the block ends takes a new slot after it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RateSpec:
    per_second: float | None  # whole credential; None = unlimited
    per_endpoint_per_second: float | None = None
    safety: float = 0.95  # run just under the published limit


class _Schedule:
    """The next free slot of one limit (the credential's, or one endpoint's)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_free = 0.0


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
        self._global = _Schedule(spec.per_second * spec.safety) if spec.per_second else None
        self._endpoints: dict[str, _Schedule] = {}

    @property
    def current_rate(self) -> float | None:
        if self.spec.per_second is None:
            return None
        return self.spec.per_second * self.spec.safety * self._factor

    async def acquire(self, endpoint: str) -> float:
        """Wait for a slot; returns the seconds spent waiting."""
        started = time.monotonic()
        schedules = [s for s in (self._global, self._endpoint(endpoint)) if s is not None]
        while True:
            now = time.monotonic()
            self._maybe_recover(now)
            slot = max([now, self._blocked_until, *(s.next_free for s in schedules)])
            for schedule in schedules:
                schedule.next_free = slot + schedule.interval
            if slot > now:
                await asyncio.sleep(slot - now)
            if time.monotonic() >= self._blocked_until:
                return time.monotonic() - started
            # A 429 arrived while this caller waited: honour its Retry-After too.

    def _endpoint(self, endpoint: str) -> _Schedule | None:
        if not self.spec.per_endpoint_per_second:
            return None
        schedule = self._endpoints.get(endpoint)
        if schedule is None:
            rate = self.spec.per_endpoint_per_second * self.spec.safety
            schedule = self._endpoints[endpoint] = _Schedule(rate)
        return schedule

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
        """In place: slots already reserved stay, the next ones are spaced anew."""
        self._factor = factor
        if self._global is not None and self.spec.per_second:
            self._global.interval = 1.0 / (self.spec.per_second * self.spec.safety * factor)
