"""The batch path: destinations that deliver many bills in one provider call.

A destination that batches (Xero posts up to 50 invoices a call, Salesforce upserts up to
200 records) subclasses `BatchDestination`: it declares a `BatchPolicy` (maximum size,
maximum linger) and implements `deliver_batch`, which takes many delivery requests and
returns one `Outcome` per request, in request order: a `DeliveryResult` or a classified
`SinkError`. The rules a destination author keeps:

- one bad bill never fails its neighbours: a bill the provider refuses is that bill's
  `FatalBillError` outcome, the others keep their results;
- a failure of the whole call (authentication, 5xx, timeout, no answer) is raised once as a
  `SinkError`; the framework applies it to every member (each member's own retry policy
  then decides);
- everything the single path says about `existing`, `recovering` and results holds per
  request.

The framework groups requests by `BatchKey`, so a batch never mixes credentials, tenants or
configurations whose settings differ (two configurations with identical destination
settings and credential may share a batch: the provider call is the same).

`BatchAccumulator` is the pure part (no clock of its own, no I/O); `BatchDispatcher` runs
it on the event loop and is what the runner calls instead of `deliver`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prometheus_client import Counter, Histogram

from shared.contracts import IntegrationConfig
from shared.credentials import Credential
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger
from shared.sinks.destination import (
    ClientT,
    DeliveryRequest,
    DeliveryResult,
    ProviderCalls,
    SinkDestination,
)
from shared.sinks.errors import SinkError
from shared.sinks.limits import QuotaLimiter
from shared.sinks.ratelimit import AdaptiveRateLimiter

log = get_logger("sink.batching")
T = TypeVar("T")

Outcome = DeliveryResult | SinkError
CallLimiter = AdaptiveRateLimiter | QuotaLimiter

BATCH_SIZE = Histogram(
    "billsync_sink_batch_size",
    "Delivery requests per provider batch call",
    ["destination"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
BATCH_CALLS = Counter(
    "billsync_sink_batch_calls_total",
    "Batch deliveries by how they ended (ok: one outcome per request; failed: whole batch)",
    ["destination", "result"],
)


@dataclass(frozen=True)
class BatchPolicy:
    max_size: int
    max_linger: float  # seconds a request may wait for companions

    def __post_init__(self) -> None:
        if self.max_size < 1 or self.max_linger < 0:
            raise ValueError("a batch policy needs max_size >= 1 and max_linger >= 0")


@dataclass(frozen=True, order=True)
class BatchKey:
    """What members of one batch share."""

    credential_id: str
    tenant: str | None
    settings: str  # fingerprint of destination + destination settings


def settings_fingerprint(config: IntegrationConfig) -> str:
    """Equal for configurations whose destination settings are equal (ids, names, lists
    and filters do not change the provider call)."""
    payload = {
        "destination": config.destination.value,
        "settings": config.destination_config.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def batch_key(config: IntegrationConfig, credential_id: str, tenant: str | None) -> BatchKey:
    return BatchKey(credential_id, tenant, settings_fingerprint(config))


class BatchDestination(SinkDestination[ClientT]):
    """A destination with the batch path. `deliver` (the single path) is a batch of one."""

    batch_policy: BatchPolicy

    @abstractmethod
    async def deliver_batch(
        self, requests: Sequence[DeliveryRequest], client: ClientT, calls: ProviderCalls
    ) -> list[Outcome]:
        """One outcome per request, in request order; raise a SinkError for a failure of
        the whole call."""

    async def deliver(
        self, request: DeliveryRequest, client: ClientT, calls: ProviderCalls
    ) -> DeliveryResult:
        outcome = (await self.deliver_batch([request], client, calls))[0]
        if isinstance(outcome, SinkError):
            raise outcome
        return outcome


# ---- the pure accumulator -------------------------------------------------------------


@dataclass
class _Open(Generic[T]):
    opened_at: float
    items: list[T] = field(default_factory=list)


class BatchAccumulator(Generic[T]):
    """Groups items by key. A batch closes when it reaches `max_size` (returned by `add`)
    or when its first item has waited `max_linger` (returned by `due`). Time is passed in."""

    def __init__(self, policy: BatchPolicy) -> None:
        self.policy = policy
        self._open: dict[BatchKey, _Open[T]] = {}

    def __len__(self) -> int:
        return sum(len(o.items) for o in self._open.values())

    def add(self, key: BatchKey, item: T, now: float) -> list[T] | None:
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _Open(now)
        batch.items.append(item)
        if len(batch.items) >= self.policy.max_size:
            del self._open[key]
            return batch.items
        return None

    def remove(self, key: BatchKey, item: T) -> bool:
        """Take back an item that has not been sent (its requester gave up)."""
        batch = self._open.get(key)
        if batch is None or item not in batch.items:
            return False
        batch.items.remove(item)
        if not batch.items:
            del self._open[key]
        return True

    def due(self, now: float) -> list[tuple[BatchKey, list[T]]]:
        ready = [k for k, b in self._open.items() if now - b.opened_at >= self.policy.max_linger]
        return [(k, self._open.pop(k).items) for k in sorted(ready)]

    def next_deadline(self) -> float | None:
        if not self._open:
            return None
        return min(b.opened_at for b in self._open.values()) + self.policy.max_linger

    def drain(self) -> list[tuple[BatchKey, list[T]]]:
        out = [(k, b.items) for k, b in sorted(self._open.items())]
        self._open.clear()
        return out


def spread_outcomes(count: int, outcomes: object) -> list[Outcome] | None:
    """The destination's answer if it is one outcome per request; None otherwise (a bug in
    the destination, reported as an internal error for every member)."""
    if not isinstance(outcomes, list) or len(outcomes) != count:
        return None
    if not all(isinstance(o, DeliveryResult | SinkError) for o in outcomes):
        return None
    return outcomes


# ---- running it -----------------------------------------------------------------------


@dataclass(eq=False)
class _Pending(Generic[T]):
    request: DeliveryRequest
    future: asyncio.Future[DeliveryResult]


Sender = Callable[[BatchKey, Sequence[DeliveryRequest]], Awaitable[list[Outcome]]]


class BatchDispatcher:
    """`submit` a request, get its own outcome back (a result, or its SinkError raised).

    `send(key, requests)` makes the provider call for one batch (the runner binds the
    client, the limiter and the call wrapper, whose timeout starts once the limiter admits
    the call: a batch queued behind others is not timed out before it is sent); a
    SinkError it raises is applied to every member, any other exception too (as an
    internal error of each member's run)."""

    def __init__(self, family: str, policy: BatchPolicy, send: Sender) -> None:
        self.family = family
        self.policy = policy
        self._send = send
        self._acc: BatchAccumulator[_Pending[DeliveryResult]] = BatchAccumulator(policy)
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.calls = 0
        self.delivered = 0

    async def submit(self, key: BatchKey, request: DeliveryRequest) -> DeliveryResult:
        self._ensure_timer()
        future: asyncio.Future[DeliveryResult] = asyncio.get_running_loop().create_future()
        pending: _Pending[DeliveryResult] = _Pending(request, future)
        full = self._acc.add(key, pending, time.monotonic())
        if full is not None:
            self._launch(key, full)
        else:
            self._wake.set()
        try:
            return await asyncio.shield(pending.future)
        except asyncio.CancelledError:
            self._acc.remove(key, pending)  # not sent yet: it leaves the batch
            raise

    async def close(self) -> None:
        """Stop the timer and cancel batches in flight (their members are being stopped
        too; nothing is committed for them)."""
        await cancel_and_wait(self._timer)
        self._timer = None
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
        for _, items in self._acc.drain():
            for p in items:
                if not p.future.done():
                    p.future.cancel()

    def _ensure_timer(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._linger(), name=f"batches:{self.family}")

    async def _linger(self) -> None:
        while True:
            deadline = self._acc.next_deadline()
            self._wake.clear()
            if deadline is None:
                await self._wake.wait()
                continue
            delay = deadline - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                    continue  # something changed: recompute the deadline
                except TimeoutError:
                    pass
            for key, items in self._acc.due(time.monotonic()):
                self._launch(key, items)

    def _launch(self, key: BatchKey, items: list[_Pending[DeliveryResult]]) -> None:
        task = asyncio.create_task(self._deliver(key, items))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _deliver(self, key: BatchKey, items: list[_Pending[DeliveryResult]]) -> None:
        live = [p for p in items if not p.future.done()]
        if not live:
            return
        BATCH_SIZE.labels(self.family).observe(len(live))
        self.calls += 1
        try:
            answer: object = await self._send(key, [p.request for p in live])
        except asyncio.CancelledError:
            for p in live:
                if not p.future.done():
                    p.future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - whole-batch failure: applied to every member
            BATCH_CALLS.labels(self.family, "failed").inc()
            log.info(
                "batch_failed",
                destination=self.family,
                size=len(live),
                error=(exc.message if isinstance(exc, SinkError) else repr(exc))[:300],
            )
            for p in live:
                if not p.future.done():
                    p.future.set_exception(exc)
                    p.future.exception()  # retrieved here: a member gone by now is no error
            return
        outcomes = spread_outcomes(len(live), answer)
        if outcomes is None:
            BATCH_CALLS.labels(self.family, "failed").inc()
            bug = RuntimeError(
                f"{self.family} deliver_batch returned no outcome per request for a batch "
                f"of {len(live)} (a bug in the destination)"
            )
            for p in live:
                if not p.future.done():
                    p.future.set_exception(bug)
                    p.future.exception()
            return
        BATCH_CALLS.labels(self.family, "ok").inc()
        for p, outcome in zip(live, outcomes, strict=True):
            if p.future.done():
                continue
            if isinstance(outcome, SinkError):
                p.future.set_exception(outcome)
                p.future.exception()
            else:
                self.delivered += 1
                p.future.set_result(outcome)


# ---- the runner's side ----------------------------------------------------------------

ClientAndLimiter = Callable[[IntegrationConfig, Credential], tuple[Any, CallLimiter]]


class BatchPath:
    """What the runner calls instead of `destination.deliver` for a batch destination:
    `await path.deliver(request, credential)`. Each batch key is bound to the client and
    limiter of its credential (and tenant), so a batch's call uses exactly those.
    `timeout` bounds each provider call of a batch once the limiter has admitted it."""

    def __init__(
        self,
        destination: BatchDestination[Any],
        client_for: ClientAndLimiter,
        timeout: float | None = None,
    ) -> None:
        self.destination = destination
        self._client_for = client_for
        self._bound: dict[BatchKey, tuple[Any, CallLimiter]] = {}
        self._timeout = timeout
        self.dispatcher = BatchDispatcher(destination.family, destination.batch_policy, self._send)

    def key_for(self, config: IntegrationConfig, credential: Credential) -> BatchKey:
        return batch_key(config, credential.id, self.destination.tenant_of(config, credential))

    async def deliver(self, request: DeliveryRequest, credential: Credential) -> DeliveryResult:
        key = self.key_for(request.config, credential)
        self._bound[key] = self._client_for(request.config, credential)
        return await self.dispatcher.submit(key, request)

    async def _send(self, key: BatchKey, requests: Sequence[DeliveryRequest]) -> list[Outcome]:
        client, limiter = self._bound[key]
        calls = ProviderCalls(
            self.destination.family, limiter, self.destination.classify, timeout=self._timeout
        )
        return await self.destination.deliver_batch(requests, client, calls)

    async def close(self) -> None:
        await self.dispatcher.close()
