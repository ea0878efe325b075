"""Pure parts of the sink framework: offsets, customers, classification, backoff,
rate limiting and credential sealing."""

from __future__ import annotations

import asyncio
import bisect
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.contracts import ExternalMapping, ExternalSystem
from shared.credentials import CredentialAdapter, CredentialCipher, MissingKeyError, generate_key
from shared.credentials.store import seal, unseal
from shared.sinks.backoff import RetryPolicy
from shared.sinks.classify import classify_response
from shared.sinks.customers import MappingIndex, resolve_customer
from shared.sinks.errors import (
    AuthenticationError,
    FatalBillError,
    MissingAccountMappingError,
    RateLimitedError,
    RetriableError,
)
from shared.sinks.offsets import OffsetTracker
from shared.sinks.ratelimit import AdaptiveRateLimiter, RateSpec
from tests.support.builders import config


def test_offsets_commit_only_past_finished_work() -> None:
    t = OffsetTracker()
    assert t.committable() is None
    for o in (10, 11, 12, 13):
        t.start(o)
    t.finish(12)
    assert t.committable() == 10
    t.finish(10)
    assert t.committable() == 11
    t.finish(11)
    assert t.committable() == 13
    t.finish(13)
    assert t.committable() == 14 and t.in_flight == 0


@given(st.permutations(list(range(30))))
def test_offsets_any_completion_order(order: list[int]) -> None:
    t = OffsetTracker()
    for o in range(30):
        t.start(o)
    finished: set[int] = set()
    for o in order:
        t.finish(o)
        finished.add(o)
        lowest_unfinished = min(set(range(30)) - finished, default=30)
        assert t.committable() == lowest_unfinished


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 12)), max_size=80))
def test_offsets_with_repeated_starts(ops: list[tuple[bool, int]]) -> None:
    """A record fetched again (seek, rebalance) may start an offset twice: it stays in
    flight until every start has finished; finishing an unknown offset changes nothing."""
    t = OffsetTracker()
    open_starts: dict[int, int] = {}
    seen: set[int] = set()
    for is_start, offset in ops:
        if is_start:
            t.start(offset)
            open_starts[offset] = open_starts.get(offset, 0) + 1
            seen.add(offset)
        else:
            t.finish(offset)
            if open_starts.get(offset):
                open_starts[offset] -= 1
        unfinished = [o for o, n in open_starts.items() if n > 0]
        expected = min(unfinished) if unfinished else (max(seen) + 1 if seen else None)
        assert t.committable() == expected
        assert t.in_flight == sum(open_starts.values())


def _mapping(
    mid: str,
    ext: str,
    account: str = "acc-1",
    parent: str | None = None,
    system: ExternalSystem = ExternalSystem.STRIPE,
) -> ExternalMapping:
    return ExternalMapping(
        id=mid,
        external_system=system,
        external_table="Customer",
        external_id=ext,
        m3ter_entity="Account",
        m3ter_id=account,
        integration_config_id=parent,
    )


def test_customer_is_the_account_id_without_external_mappings() -> None:
    assert resolve_customer("acc-1", config(), [], ExternalSystem.STRIPE, "Customer") == "acc-1"


def test_customer_from_external_mapping_prefers_own_configuration() -> None:
    cfg = config("cfg-1", entity={"useExternalMappingAccountCode": True})
    maps = [
        _mapping("m1", "cus_other", parent="cfg-9"),
        _mapping("m2", "cus_global"),
        _mapping("m3", "cus_mine", parent="cfg-1"),
        _mapping("m4", "xero", system=ExternalSystem.XERO, parent="cfg-1"),
    ]
    assert resolve_customer("acc-1", cfg, maps, ExternalSystem.STRIPE, "Customer") == "cus_mine"
    assert (
        resolve_customer("acc-1", cfg, maps[:2], ExternalSystem.STRIPE, "Customer") == "cus_global"
    )


def test_enforced_mappings_only_use_this_configurations_mappings() -> None:
    cfg = config(
        "cfg-1",
        entity={"useExternalMappingAccountCode": True, "enforceExternalMappingsForConfig": True},
    )
    with pytest.raises(MissingAccountMappingError, match="parent configuration 'cfg-1'"):
        resolve_customer(
            "acc-1", cfg, [_mapping("m2", "cus_global")], ExternalSystem.STRIPE, "Customer"
        )
    assert (
        resolve_customer(
            "acc-1",
            cfg,
            [_mapping("m3", "cus_x", parent="cfg-1")],
            ExternalSystem.STRIPE,
            "Customer",
        )
        == "cus_x"
    )


def test_missing_mapping_says_what_to_do() -> None:
    cfg = config(entity={"useExternalMappingAccountCode": True})
    with pytest.raises(MissingAccountMappingError, match="create an external mapping"):
        resolve_customer("acc-7", cfg, [], ExternalSystem.STRIPE, "Customer")


def test_mapping_index_follows_updates_and_tombstones() -> None:
    index = MappingIndex()
    index.apply("m1", _mapping("m1", "cus_a"))
    index.apply("m1", _mapping("m1", "cus_b", account="acc-2"))
    assert index.for_account(ExternalSystem.STRIPE, "acc-1") == []
    assert [m.external_id for m in index.for_account(ExternalSystem.STRIPE, "acc-2")] == ["cus_b"]
    index.apply("m1", None)
    assert index.for_account(ExternalSystem.STRIPE, "acc-2") == []


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, None, RateLimitedError),
        (403, "REQUEST_LIMIT_EXCEEDED", RateLimitedError),
        (500, None, RetriableError),
        (503, None, RetriableError),
        (None, None, RetriableError),
        (409, "idempotency_key_in_use", RetriableError),
        (401, None, AuthenticationError),
        (401, "INVALID_SESSION_ID", AuthenticationError),
        (400, "parameter_invalid_integer", FatalBillError),
        (404, "resource_missing", FatalBillError),
    ],
)
def test_one_place_classifies_provider_answers(
    status: int | None, code: str | None, kind: type
) -> None:
    err = classify_response(status, "msg", provider_code=code, headers={"Retry-After": "3"})
    assert type(err) is kind
    if isinstance(err, RateLimitedError):
        assert err.retry_after == 3.0


def test_backoff_is_capped_jittered_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=8)
    rng = random.Random(1)
    delays = [policy.delay(a, rng=rng) for a in range(1, 10)]
    assert all(0.25 <= d <= 8 for d in delays)
    assert max(delays) <= 8 and delays[-1] >= 4  # capped, still near the cap
    assert policy.delay(1, retry_after=5, rng=rng) >= 5
    assert policy.delay(1, retry_after=50, rng=rng) == 8


async def test_rate_limiter_holds_the_rate_and_slows_on_429() -> None:
    limiter = AdaptiveRateLimiter(RateSpec(per_second=50, safety=1.0))
    started = time.monotonic()
    for _ in range(40):
        await limiter.acquire("POST /x")
    elapsed = time.monotonic() - started
    assert elapsed >= 0.6  # 40 calls at 50/s after a 5-call burst: >= ~0.7 s
    limiter.on_rate_limited(0.2)  # a lone 429: Retry-After only
    assert limiter.current_rate == 50
    limiter.on_rate_limited(0.2)
    limiter.on_rate_limited(0.2)  # 429s keep coming: slow down, once per burst
    assert limiter.current_rate == pytest.approx(40)
    t0 = time.monotonic()
    await limiter.acquire("POST /x")
    assert time.monotonic() - t0 >= 0.15  # Retry-After honoured


async def test_rate_limiter_recovers_after_quiet_periods() -> None:
    limiter = AdaptiveRateLimiter(RateSpec(per_second=10, safety=1.0), recovery_seconds=0.05)
    limiter.on_rate_limited(0)
    limiter.on_rate_limited(0)
    assert limiter.current_rate == pytest.approx(8)
    for _ in range(4):
        await asyncio.sleep(0.06)
        await limiter.acquire("x")
    assert limiter.current_rate == pytest.approx(10)


async def test_rate_limiter_per_endpoint() -> None:
    limiter = AdaptiveRateLimiter(RateSpec(per_second=None, per_endpoint_per_second=20, safety=1.0))
    started = time.monotonic()
    await asyncio.gather(
        *(limiter.acquire("a") for _ in range(12)), *(limiter.acquire("b") for _ in range(2))
    )
    assert time.monotonic() - started >= 0.35


def peak_per_second(times: list[float]) -> int:
    """The most admissions in any one-second window (sliding, like the providers')."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


async def test_rate_limiter_waiters_honour_retry_after_and_never_burst() -> None:
    """Issue 7 item 5: callers already waiting when 429s arrive (and the rate slows down)
    neither release together nor ignore Retry-After; the peak per second stays within the
    limit."""
    limiter = AdaptiveRateLimiter(RateSpec(per_second=25), recovery_seconds=0.2)
    admitted: list[float] = []
    eight_in = asyncio.Event()

    async def caller() -> None:
        await limiter.acquire("POST /v1/invoices")
        admitted.append(time.monotonic())
        if len(admitted) >= 8:
            eight_in.set()

    callers = [asyncio.create_task(caller()) for _ in range(60)]
    await eight_in.wait()
    limiter.on_rate_limited(0.5)
    limiter.on_rate_limited(0.5)  # sustained: slows down while 50 callers wait
    blocked_from = time.monotonic()
    await asyncio.gather(*callers)
    assert not [t for t in admitted if blocked_from + 0.01 < t < blocked_from + 0.49]
    assert peak_per_second(admitted) <= 25
    assert limiter.current_rate is not None and limiter.current_rate <= 25


def test_credentials_sealed_without_plaintext() -> None:
    cipher = CredentialCipher(generate_key())
    cred = CredentialAdapter.validate_python(
        {
            "id": "c1",
            "type": "STRIPE",
            "apiKey": "sk_test_supersecret123",
            "connectedAccountId": "acct_123",
        }
    )
    stored = seal(cred, cipher)
    wire = stored.to_bytes().decode()
    assert "supersecret" not in wire and "acct_123" in wire
    assert "supersecret" not in repr(cred) and "supersecret" not in str(cred.model_dump())
    back = unseal(stored, cipher)
    assert back.api_key.get_secret_value() == "sk_test_supersecret123"  # type: ignore[union-attr]
    with pytest.raises(MissingKeyError, match="differs"):
        unseal(stored, CredentialCipher(generate_key()))
    with pytest.raises(MissingKeyError, match="keygen"):
        CredentialCipher(None)


async def test_rate_limiter_survives_slowing_below_one_request_per_slice() -> None:
    limiter = AdaptiveRateLimiter(RateSpec(per_second=4, safety=1.0), recovery_seconds=60)
    for _ in range(10):
        limiter._last_slowdown = -1e9  # as if each 429 came a second apart
        limiter.on_rate_limited(0)
    assert limiter.current_rate == 1.0  # slowed down to the floor of a quarter
    await limiter.acquire("x")  # a bucket below one request per slice must still admit one


async def test_priority_slots_serve_retries_before_the_backlog() -> None:
    from shared.sinks.locks import PrioritySlots

    slots = PrioritySlots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def worker(name: str, urgent: bool) -> None:
        async with slots.hold(urgent):
            order.append(name)
            if name == "first":
                await release.wait()

    first = asyncio.create_task(worker("first", False))
    await asyncio.sleep(0)
    backlog = [asyncio.create_task(worker(f"new-{i}", False)) for i in range(3)]
    cancelled = asyncio.create_task(worker("gone", True))
    retry = asyncio.create_task(worker("retry", True))
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    await asyncio.gather(first, retry, *backlog, return_exceptions=True)
    assert order == ["first", "retry", "new-0", "new-1", "new-2"]
    async with slots.hold():  # every slot came back
        pass
