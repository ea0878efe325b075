"""The batch path's pure accumulator and its dispatcher (no broker, no provider)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from shared.contracts import (
    ExternalSystem,
    RunStatus,
)
from shared.credentials import XeroCredential
from shared.sinks.batching import (
    BatchAccumulator,
    BatchDestination,
    BatchDispatcher,
    BatchKey,
    BatchPath,
    BatchPolicy,
    Outcome,
    batch_key,
    settings_fingerprint,
)
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.errors import AuthenticationError, FatalBillError, ProviderTimeoutError, SinkError
from shared.sinks.invoice_map import InvoiceState
from shared.sinks.standard_tests import generated_envelope
from tests.support.builders import account, bill, config
from tests.support.destinations import NoProvider
from tests.support.limiters import GateLimiter, outlast

A = BatchKey("cred-a", None, "s1")
CREDENTIAL = XeroCredential(
    id="cred-a", client_id="app", client_secret=SecretStr("s"), tenant_id="tenant-a"
)
B = BatchKey("cred-b", None, "s1")


def test_full_batch_is_returned_at_max_size() -> None:
    acc: BatchAccumulator[int] = BatchAccumulator(BatchPolicy(3, 10.0))
    assert acc.add(A, 1, 0.0) is None
    assert acc.add(A, 2, 0.1) is None
    assert acc.add(A, 3, 0.2) == [1, 2, 3]
    assert len(acc) == 0


def test_linger_closes_a_batch_from_its_first_item() -> None:
    acc: BatchAccumulator[int] = BatchAccumulator(BatchPolicy(50, 2.0))
    acc.add(A, 1, 0.0)
    acc.add(B, 2, 1.0)
    assert acc.next_deadline() == 2.0
    assert acc.due(1.9) == []
    assert acc.due(2.0) == [(A, [1])]
    assert acc.next_deadline() == 3.0
    assert acc.due(3.5) == [(B, [2])]
    assert acc.next_deadline() is None


def test_batches_never_mix_keys() -> None:
    acc: BatchAccumulator[str] = BatchAccumulator(BatchPolicy(2, 1.0))
    assert acc.add(A, "a1", 0) is None
    assert acc.add(B, "b1", 0) is None
    assert acc.add(A, "a2", 0) == ["a1", "a2"]
    assert acc.drain() == [(B, ["b1"])]


def test_removed_item_leaves_its_batch() -> None:
    acc: BatchAccumulator[str] = BatchAccumulator(BatchPolicy(5, 1.0))
    acc.add(A, "x", 0)
    assert acc.remove(A, "x") and not acc.remove(A, "x")
    assert acc.next_deadline() is None


@given(st.lists(st.tuples(st.sampled_from([A, B]), st.integers()), max_size=60))
def test_every_item_comes_out_once_in_batches_of_one_key(items: list[tuple[BatchKey, int]]) -> None:
    acc: BatchAccumulator[tuple[BatchKey, int]] = BatchAccumulator(BatchPolicy(4, 1.0))
    out: list[tuple[BatchKey, list[tuple[BatchKey, int]]]] = []
    for i, (key, value) in enumerate(items):
        full = acc.add(key, (key, value), float(i))
        if full is not None:
            out.append((key, full))
        out.extend(acc.due(float(i)))
    out.extend(acc.drain())
    assert sorted(x for _, batch in out for x in batch) == sorted(items)
    for key, batch in out:
        assert 1 <= len(batch) <= 4 and all(k == key for k, _ in batch)


def test_settings_fingerprint_ignores_names_but_not_settings() -> None:
    a = config("cfg-a", name="A", destinationConfig={"leaveInvoicesAsDrafts": True})
    b = config("cfg-b", name="B", destinationConfig={"leaveInvoicesAsDrafts": True})
    c = config("cfg-c", destinationConfig={"leaveInvoicesAsDrafts": False})
    assert settings_fingerprint(a) == settings_fingerprint(b) != settings_fingerprint(c)
    assert batch_key(a, "cred", "t1") != batch_key(a, "cred", "t2")
    assert batch_key(a, "cred", None) != batch_key(a, "cred-2", None)


def _request(bill_id: str) -> DeliveryRequest:
    cfg = config("cfg-1")
    b = bill(bill_id)
    envelope = generated_envelope(cfg, b, account())
    return DeliveryRequest(envelope, cfg, "cus", None, False, 1, f"run-{bill_id}")


def _ok(request: DeliveryRequest) -> DeliveryResult:
    return DeliveryResult(RunStatus.COMPLETE, InvoiceState.DRAFT, f"inv-{request.envelope.bill.id}")


async def test_dispatcher_gives_each_member_its_own_outcome() -> None:
    sizes: list[int] = []

    async def send(key: BatchKey, requests: Sequence[DeliveryRequest]) -> list[Outcome]:
        sizes.append(len(requests))
        return [
            FatalBillError("bad bill") if r.envelope.bill.id == "b-bad" else _ok(r)
            for r in requests
        ]

    dispatcher = BatchDispatcher("test", BatchPolicy(3, 5.0), send)
    results = await asyncio.gather(
        *(dispatcher.submit(A, _request(b)) for b in ("b-1", "b-bad", "b-3")),
        return_exceptions=True,
    )
    await dispatcher.close()
    assert sizes == [3]  # full: sent without waiting for the linger
    assert isinstance(results[0], DeliveryResult) and results[0].external_id == "inv-b-1"
    assert isinstance(results[1], FatalBillError)
    assert isinstance(results[2], DeliveryResult) and results[2].external_id == "inv-b-3"


async def test_whole_batch_failure_is_applied_to_every_member() -> None:
    async def send(key: BatchKey, requests: Sequence[DeliveryRequest]) -> list[Outcome]:
        raise AuthenticationError("key revoked")

    dispatcher = BatchDispatcher("test", BatchPolicy(10, 0.01), send)
    results = await asyncio.gather(
        *(dispatcher.submit(A, _request(f"b-{i}")) for i in range(4)), return_exceptions=True
    )
    await dispatcher.close()
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert dispatcher.calls == 1  # lingered into one call


async def test_wrong_number_of_outcomes_is_our_bug_not_a_provider_error() -> None:
    async def send(key: BatchKey, requests: Sequence[DeliveryRequest]) -> list[Outcome]:
        return [_ok(requests[0])]

    dispatcher = BatchDispatcher("test", BatchPolicy(2, 5.0), send)
    results = await asyncio.gather(
        dispatcher.submit(A, _request("b-1")),
        dispatcher.submit(A, _request("b-2")),
        return_exceptions=True,
    )
    await dispatcher.close()
    assert all(isinstance(r, RuntimeError) and not isinstance(r, SinkError) for r in results)


async def test_a_cancelled_member_leaves_before_the_call() -> None:
    sent: list[list[str]] = []

    async def send(key: BatchKey, requests: Sequence[DeliveryRequest]) -> list[Outcome]:
        sent.append([r.envelope.bill.id for r in requests])
        return [_ok(r) for r in requests]

    dispatcher = BatchDispatcher("test", BatchPolicy(10, 0.2), send)
    gone = asyncio.create_task(dispatcher.submit(A, _request("b-gone")))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert (await dispatcher.submit(A, _request("b-kept"))).external_id == "inv-b-kept"
    await dispatcher.close()
    assert sent == [["b-kept"]]


class _Gated(NoProvider, BatchDestination[None]):
    """One provider call per batch, through the call wrapper (limiter, then timeout)."""

    family = "test"
    external_system = ExternalSystem.XERO
    customer_table = "Contact"
    credential_type = XeroCredential
    batch_policy = BatchPolicy(2, 5.0)

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang
        self.sent: list[list[str]] = []

    async def deliver_batch(
        self, requests: Sequence[DeliveryRequest], client: None, calls: ProviderCalls
    ) -> list[Outcome]:
        async def post() -> list[Outcome]:
            self.sent.append([r.envelope.bill.id for r in requests])
            if self.hang:
                await asyncio.Event().wait()  # the provider never answers
            return [_ok(r) for r in requests]

        return await calls.call("POST /batch", post, write=True)


CALL_TIMEOUT = 0.05


async def test_batches_queued_behind_the_limiter_are_not_timed_out_before_they_are_sent() -> None:
    """The limiter admits one call at a time, each after longer than the call timeout: every
    batch still gets its real answer (the timeout starts once the limiter admits it)."""
    gate = GateLimiter()
    destination = _Gated()
    path = BatchPath(destination, lambda _c, _k: (None, gate), timeout=CALL_TIMEOUT)
    members = [asyncio.create_task(path.deliver(_request(f"b-{i}"), CREDENTIAL)) for i in range(6)]
    await gate.until_waiting(3)  # three full batches, queued in the limiter
    for batch in range(3):
        await outlast(CALL_TIMEOUT)  # longer than the timeout, counted after they queued
        await gate.admit(1)
        while sum(m.done() for m in members) < 2 * (batch + 1):  # that batch answered
            pending = [m for m in members if not m.done()]
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    results = await asyncio.gather(*members, return_exceptions=True)
    await path.close()
    assert [getattr(r, "external_id", r) for r in results] == [f"inv-b-{i}" for i in range(6)]
    assert sorted(destination.sent) == [["b-0", "b-1"], ["b-2", "b-3"], ["b-4", "b-5"]]


async def test_a_batch_call_without_an_answer_still_times_out() -> None:
    gate = GateLimiter()
    path = BatchPath(_Gated(hang=True), lambda _c, _k: (None, gate), timeout=CALL_TIMEOUT)
    await gate.admit(1)
    results = await asyncio.gather(
        *(path.deliver(_request(f"b-{i}"), CREDENTIAL) for i in range(2)),
        return_exceptions=True,
    )
    await path.close()
    assert all(
        isinstance(r, ProviderTimeoutError) and "no answer within" in r.message for r in results
    )
