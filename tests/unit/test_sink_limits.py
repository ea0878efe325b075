"""Provider limits: windows, per endpoint, concurrency, daily quota, rate headers, scope."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.sinks.limits import (
    LimitState,
    ProviderLimits,
    QuotaExhaustedError,
    QuotaLimiter,
    RateHeaders,
    Scope,
    Window,
    limit_key,
    next_reset,
)

NOON = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
XERO = ProviderLimits((Window(60, 60.0),), concurrent=5, daily=5000, scope=Scope.TENANT)


def test_calls_are_spread_evenly_over_the_window() -> None:
    state = LimitState(ProviderLimits((Window(10, 1.0),), safety=1.0))
    assert state.wait("x", 0.0) == 0
    state.begin("x", 0.0, NOON)
    assert state.wait("x", 0.0) == pytest.approx(0.1)  # not a burst of ten
    assert state.wait("x", 0.1) == 0


def test_window_admits_its_limit_then_waits_for_the_oldest_to_age_out() -> None:
    state = LimitState(ProviderLimits((Window(10, 1.0),), safety=1.0))
    for i in range(10):
        assert state.wait("x", i * 0.1) == pytest.approx(0)
        state.begin("x", i * 0.1, NOON)
    # Spacing alone would allow one at 1.0; the log agrees (the first call ages out).
    assert state.wait("x", 0.95) == pytest.approx(0.05)


def test_safety_keeps_us_just_under_the_published_limit() -> None:
    state = LimitState(ProviderLimits((Window(60, 60.0),)))  # 95%: 57 a minute
    assert state._logs[0].spacing == pytest.approx(60 / 57)


def test_endpoint_windows_count_only_their_endpoint() -> None:
    state = LimitState(ProviderLimits((Window(2, 1.0, "POST /a"),), safety=1.0))
    state.begin("POST /a", 0, NOON)
    state.begin("POST /a", 0.5, NOON)
    assert state.wait("POST /a", 0.6) > 0
    assert state.wait("GET /b", 0.6) == 0


def test_rate_headers_book_what_someone_else_used() -> None:
    state = LimitState(ProviderLimits((Window(60, 60.0),), safety=1.0))
    state.begin("x", 0.0, NOON)
    # We made 1 call; the provider says 10 remain: 49 were made by someone else.
    state.observe(RateHeaders(remaining_in_window=10), 0.0, NOON)
    for i in range(1, 11):
        assert state.wait("x", float(i)) == 0
        state.begin("x", float(i), NOON)
    assert state.wait("x", 11.0) == pytest.approx(49.0)  # before the provider's 429


def test_daily_quota_is_spent_until_the_reset_and_headers_can_say_so() -> None:
    state = LimitState(ProviderLimits(daily=3, daily_reset_hour_utc=0))
    for _ in range(3):
        assert state.quota_spent(NOON) is None
        state.begin("x", 0, NOON)
    reset = datetime(2026, 11, 30, tzinfo=UTC)
    assert state.quota_spent(NOON) == reset
    assert state.quota_spent(reset) is None  # a new day
    fresh = LimitState(ProviderLimits(daily=5000))
    fresh.observe(RateHeaders(remaining_today=0), 0, NOON)
    assert fresh.quota_spent(NOON) == reset


def test_next_reset() -> None:
    assert next_reset(NOON, 0) == datetime(2026, 11, 30, tzinfo=UTC)
    assert next_reset(NOON, 13) == NOON + timedelta(hours=1)


def test_scope_keys() -> None:
    assert limit_key(Scope.PROCESS, "cred-1", None) == limit_key(Scope.PROCESS, "cred-2", "t")
    assert limit_key(Scope.TENANT, "c", "t1") != limit_key(Scope.TENANT, "c", "t2")
    assert limit_key(Scope.CREDENTIAL, "c", "t1") == limit_key(Scope.CREDENTIAL, "c", "t2")


def test_a_share_of_the_limits() -> None:
    half = XERO.scaled(0.5)
    assert (half.windows[0].limit, half.concurrent, half.daily) == (30, 2, 2500)


async def test_concurrency_slot_is_handed_on_at_release() -> None:
    limiter = QuotaLimiter(ProviderLimits(concurrent=2))
    await limiter.acquire("x")
    await limiter.acquire("x")
    third = asyncio.create_task(limiter.acquire("x"))
    await asyncio.sleep(0)
    assert not third.done() and limiter.state.active == 2
    limiter.release()
    await asyncio.wait_for(third, 1.0)
    assert limiter.state.active == 2


async def test_spent_quota_raises_at_once_without_a_call() -> None:
    limiter = QuotaLimiter(ProviderLimits(daily=1))
    await limiter.acquire("x")
    limiter.release()
    with pytest.raises(QuotaExhaustedError) as caught:
        await limiter.acquire("x")
    assert caught.value.retry_after and caught.value.retry_after > 0
    assert limiter.state.used_today == 1
