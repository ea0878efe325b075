"""The limits a provider really has: requests per interval (whole credential or per
endpoint), concurrent calls and a daily quota, counted per credential, per tenant, or per
process where the provider counts per client IP (Paddle).

`LimitState` is the pure core (time is passed in): a sliding log of call times per window,
the calls in progress and the day's count. The provider's own rate headers correct it
before a 429 happens: when the provider says fewer calls remain in this minute than our
log allows, someone else shares the quota (another instance, another app) and the
difference is booked as if we had made those calls; `remaining this day` replaces our
count of the day. A spent daily quota makes `acquire` raise `QuotaExhaustedError` at once,
without a call, until the reset: the run parks (a retry wait in its own task) and other
tenants keep going.

Calls are spread evenly over each window (at most `limit` per window, `window / limit`
apart), as the per-second limiter does.

`QuotaLimiter` runs the core on the event loop and has the interface of
`AdaptiveRateLimiter` (acquire, on_rate_limited, release, observe), so `ProviderCalls`
drives either."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.sinks.errors import RateLimitedError


class Scope(StrEnum):
    CREDENTIAL = "CREDENTIAL"  # one budget per credential (Stripe, Salesforce org)
    TENANT = "TENANT"  # per credential and tenant (Xero: per organisation)
    PROCESS = "PROCESS"  # one budget for every credential (Paddle counts per client IP)


@dataclass(frozen=True)
class Window:
    limit: int  # calls
    seconds: float  # per this many seconds
    endpoint: str | None = None  # None: every endpoint together


@dataclass(frozen=True)
class ProviderLimits:
    windows: tuple[Window, ...] = ()
    concurrent: int | None = None
    daily: int | None = None
    scope: Scope = Scope.CREDENTIAL
    safety: float = 0.95  # run just under the published rate limits (not the daily quota)
    daily_reset_hour_utc: int = 0

    def scaled(self, share: float) -> ProviderLimits:
        """This process's share of the limits (a limit divided by live instances)."""
        windows = tuple(
            Window(max(1, math.floor(w.limit * share)), w.seconds, w.endpoint) for w in self.windows
        )
        return ProviderLimits(
            windows,
            max(1, math.floor(self.concurrent * share)) if self.concurrent else None,
            max(1, math.floor(self.daily * share)) if self.daily else None,
            self.scope,
            self.safety,
            self.daily_reset_hour_utc,
        )


def limit_key(scope: Scope, credential_id: str, tenant: str | None) -> str:
    """Which budget a call draws from."""
    if scope is Scope.PROCESS:
        return "*"
    if scope is Scope.TENANT:
        return f"{credential_id}\x1f{tenant or ''}"
    return credential_id


@dataclass(frozen=True)
class RateHeaders:
    """What a provider said about its budget in a response (None: not said)."""

    remaining_in_window: int | None = None  # e.g. Xero X-MinLimit-Remaining
    window_seconds: float = 60.0
    remaining_today: int | None = None  # e.g. Xero X-DayLimit-Remaining


class QuotaExhaustedError(RateLimitedError):
    """The daily quota is spent: nothing more until `reset_at`. Parks the run; it does not
    count as a failed attempt."""

    def __init__(self, message: str, *, reset_at: datetime, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after, status_code=429)
        self.reset_at = reset_at


def next_reset(now: datetime, hour_utc: int) -> datetime:
    today = now.astimezone(UTC).replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)


@dataclass
class _Log:
    """One window: a sliding log of call starts (never more than `capacity` in any window
    length) and even spacing between starts (a burst at a window's start arrives spread
    by connection set-up and scheduling, and tips the provider's window over its limit)."""

    window: Window
    capacity: int
    times: collections.deque[float] = field(default_factory=collections.deque)
    last: float = -1e18

    @property
    def spacing(self) -> float:
        return self.window.seconds / self.capacity

    def trim(self, now: float) -> None:
        while self.times and self.times[0] <= now - self.window.seconds:
            self.times.popleft()

    def wait(self, now: float) -> float:
        self.trim(now)
        spaced = self.last + self.spacing - now
        if len(self.times) < self.capacity:
            return max(0.0, spaced)
        return max(spaced, self.times[len(self.times) - self.capacity] + self.window.seconds - now)


class LimitState:
    """The pure core. `wait(endpoint, now)` says how long until a call may start (0: now);
    `begin(endpoint, now)` books it; `end()` when it returns."""

    def __init__(self, limits: ProviderLimits) -> None:
        self.limits = limits
        self._logs = [_Log(w, max(1, math.floor(w.limit * limits.safety))) for w in limits.windows]
        self.active = 0
        self.day: datetime | None = None  # the reset this day's count runs up to
        self.used_today = 0
        self.blocked_until = 0.0  # Retry-After, monotonic

    def _applies(self, log: _Log, endpoint: str) -> bool:
        return log.window.endpoint is None or log.window.endpoint == endpoint

    def _roll_day(self, wall: datetime) -> None:
        if self.day is None or wall >= self.day:
            self.day = next_reset(wall, self.limits.daily_reset_hour_utc)
            self.used_today = 0

    def quota_spent(self, wall: datetime) -> datetime | None:
        """The reset time when today's quota is spent, else None."""
        self._roll_day(wall)
        if self.limits.daily is not None and self.used_today >= self.limits.daily:
            return self.day
        return None

    def wait(self, endpoint: str, now: float) -> float:
        waits = [self.blocked_until - now]
        waits += [log.wait(now) for log in self._logs if self._applies(log, endpoint)]
        return max(0.0, *waits)

    def has_slot(self) -> bool:
        return self.limits.concurrent is None or self.active < self.limits.concurrent

    def begin(self, endpoint: str, now: float, wall: datetime) -> None:
        self._roll_day(wall)
        for log in self._logs:
            if self._applies(log, endpoint):
                log.times.append(now)
                log.last = now
        self.active += 1
        self.used_today += 1

    def end(self) -> None:
        self.active = max(0, self.active - 1)

    def observe(self, headers: RateHeaders, now: float, wall: datetime) -> None:
        if headers.remaining_in_window is not None:
            for log in self._logs:
                if log.window.endpoint is not None:
                    continue
                if abs(log.window.seconds - headers.window_seconds) > 1e-6:
                    continue
                log.trim(now)
                ours_left = log.window.limit - len(log.times)
                phantom = ours_left - headers.remaining_in_window
                # Someone else used that many: book them so we slow down before a 429.
                log.times.extend([now] * max(0, phantom))
        if headers.remaining_today is not None and self.limits.daily is not None:
            self._roll_day(wall)
            self.used_today = max(self.used_today, self.limits.daily - headers.remaining_today)

    def on_rate_limited(self, retry_after: float | None, now: float) -> None:
        self.blocked_until = max(self.blocked_until, now + (retry_after or 1.0))


class QuotaLimiter:
    """A `LimitState` on the event loop. Callers: `await acquire(endpoint)` before a call,
    `release()` after it (always), `observe(headers)` with the response's rate headers."""

    def __init__(self, limits: ProviderLimits) -> None:
        self.state = LimitState(limits)
        self._queue = asyncio.Lock()
        self._signal: asyncio.Future[None] | None = None

    @property
    def limits(self) -> ProviderLimits:
        return self.state.limits

    async def acquire(self, endpoint: str) -> float:
        started = time.monotonic()
        # Callers queue in order (asyncio.Lock is FIFO); only the first one watches the
        # clock and the releases, so a backlog of waiters costs nothing per call.
        async with self._queue:
            while True:  # check-then-book has no await in between: atomic on the loop
                wall = datetime.now(UTC)
                reset = self.state.quota_spent(wall)
                if reset is not None:
                    raise QuotaExhaustedError(
                        f"the provider's daily quota of {self.limits.daily} calls is spent; "
                        f"waiting until {reset.isoformat()}",
                        reset_at=reset,
                        retry_after=(reset - wall).total_seconds(),
                    )
                now = time.monotonic()
                pause = self.state.wait(endpoint, now)
                if pause <= 0 and self.state.has_slot():
                    self.state.begin(endpoint, now, wall)
                    return time.monotonic() - started
                if self._signal is None or self._signal.done():
                    self._signal = asyncio.get_running_loop().create_future()
                with contextlib.suppress(TimeoutError):
                    # A release or a new observation may open the way sooner.
                    await asyncio.wait_for(
                        asyncio.shield(self._signal), pause if pause > 0 else None
                    )

    def _notify(self) -> None:
        if self._signal is not None and not self._signal.done():
            self._signal.set_result(None)

    def release(self) -> None:
        self.state.end()
        self._notify()

    def observe(self, headers: RateHeaders) -> None:
        self.state.observe(headers, time.monotonic(), datetime.now(UTC))

    def on_rate_limited(self, retry_after: float | None) -> None:
        self.state.on_rate_limited(retry_after, time.monotonic())
