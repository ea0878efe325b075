"""The delivery policy of a sink: what happens to one dispatch envelope, with no Kafka in
it (unit-tested against an in-memory `PolicyState`).

In order, under a lock per configuration and bill:
1. de-duplication: a dispatch the invoice map lists as completed is not written again
   (an operator's resend is);
2. stale versions: an older version than the one delivered ends SKIPPED, and so does one
   while a newer version of the same bill for the same configuration already waits;
3. disabled configurations end DISABLED with no provider call;
4. customer and credential resolution (missing mapping, wrong credential: final errors);
5. delivery with retries: the run is marked STARTED and the PENDING marker written when
   delivery begins (a delivery slot is held); a PENDING record left by an earlier attempt
   (a crash) makes the destination look up before writing (`recovering`), and so does
   every attempt after a retriable failure; retriable errors sleep outside the slots;
6. the run record (and the invoice map) carries the outcome; unexpected exceptions are
   internal errors with their own event and metric.

The Kafka side (shared.sinks.consumer) calls `process` once per envelope and commits the
record when it returns; `delivering` marks the parts a stop should wait for.

Framework v2 (issue 9) adds, all optional per destination:
- the batch path: a `BatchDestination`'s deliveries go through a `BatchPath` (requests
  wait for their batch without holding delivery slots; each gets its own outcome);
- provider limits: `provider_limits` gives a `QuotaLimiter` per scope (credential, tenant
  or process) instead of the per-second limiter;
- parking: a spent daily quota (`QuotaExhaustedError`) parks the envelope until the reset
  through `park` (the schedule store, so the partition moves on and its offset commits),
  without counting an attempt;
- scheduled delivery: a configuration the destination schedules is collected through
  `collect` (the run is WAITING) and delivered later with `process(..., scheduled=True)`;
- status updates from the webhooks service are applied to the invoice map here, under
  the bill's lock (`apply_status`): the sink is the map's only writer."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from shared.contracts import (
    DispatchEnvelope,
    ExternalMapping,
    ExternalStatusUpdate,
    ExternalSystem,
    IntegrationConfig,
    IntegrationEvent,
    IntegrationRun,
    RunStatus,
)
from shared.credentials import Credential
from shared.logging import get_logger
from shared.sinks import metrics as m
from shared.sinks.batching import BatchDestination, BatchPath, CallLimiter
from shared.sinks.customers import BillMappings, bill_mappings, resolve_customer
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls, SinkDestination
from shared.sinks.errors import (
    AuthenticationError,
    FatalBillError,
    InternalError,
    ProviderTimeoutError,
    RetriableError,
    SinkError,
)
from shared.sinks.invoice_map import (
    RECENT_DISPATCHES,
    InvoiceMapRecord,
    InvoiceState,
    map_key,
)
from shared.sinks.invoice_status import keep_lock, locked_record
from shared.sinks.limits import QuotaExhaustedError, QuotaLimiter, limit_key
from shared.sinks.locks import KeyedLocks, KeyedSlots, PrioritySlots
from shared.sinks.options import SinkOptions
from shared.sinks.ratelimit import AdaptiveRateLimiter

log = get_logger("sink")


def run_id_for(dispatch_id: str) -> str:
    """One run per dispatch (its retries update it), so a redelivery reuses the run id."""
    return "run_" + hashlib.sha256(dispatch_id.encode()).hexdigest()[:24]


def _now() -> datetime:
    return datetime.now(UTC)


class PolicyState(Protocol):
    """What the policy reads and writes. The sink wires it to its compacted tables and
    producer (shared.sinks.runner); unit tests to dictionaries."""

    def config(self, config_id: str) -> IntegrationConfig | None: ...

    def mappings_for(self, system: ExternalSystem, account_id: str) -> list[ExternalMapping]: ...

    def invoice_record(self, key: str) -> InvoiceMapRecord | None: ...

    def credential(self, credential_id: str) -> Credential | None: ...

    async def put_invoice_record(self, record: InvoiceMapRecord) -> None:
        """Durable (acknowledged) and visible to the next `invoice_record` at once."""

    async def send_result(self, record: IntegrationRun | IntegrationEvent) -> Awaitable[Any]:
        """Queue a result record; the returned awaitable completes when it is durable."""


Delivering = Callable[[], AbstractContextManager[None]]


class DeliveryPolicy:
    def __init__(
        self,
        destination: SinkDestination[Any],
        state: PolicyState,
        options: SinkOptions | None = None,
        delivering: Delivering = contextlib.nullcontext,
    ) -> None:
        self.destination = destination
        self.state = state
        self.options = options or SinkOptions()
        self.family = destination.family
        self._delivering = delivering
        self._key_locks = KeyedLocks()
        self._config_slots = KeyedSlots(self.options.per_config_concurrency)
        self._global_slots = PrioritySlots(self.options.max_concurrency)
        self._clients: dict[tuple[str, int, str], Any] = {}
        # One limiter per credential (or limit scope) for the life of the process.
        self._limiters: dict[tuple[str, str], CallLimiter] = {}
        self.batch = (
            BatchPath(destination, self._client_for, self.options.delivery_timeout)
            if isinstance(destination, BatchDestination)
            else None
        )
        # Set by the runner: keep an envelope for later (scheduled delivery, or parked
        # until a quota resets) and whether a configuration is scheduled.
        self.collect: Collect | None = None
        self.park: Park | None = None
        self.scheduled: Callable[[IntegrationConfig], bool] = lambda _: False
        self._run_started: dict[str, datetime] = {}  # a run keeps its first start time
        self._run_attempt: dict[str, int] = {}  # the attempt its records carry
        # Bill versions received and not yet finished, per configuration and bill.
        self._waiting: dict[str, collections.Counter[int]] = {}
        self.delivered = 0

    async def close(self) -> None:
        if self.batch is not None:
            await self.batch.close()
        for client in self._clients.values():
            await self.destination.close_client(client)
        self._clients.clear()

    # ---- one envelope ---------------------------------------------------------------

    async def process(self, envelope: DispatchEnvelope, *, scheduled: bool = False) -> None:
        """`scheduled`: the envelope comes back from the schedule (or from parking): it is
        delivered now, not collected again."""
        config = envelope.integration_config
        bill = envelope.bill
        run_id = run_id_for(envelope.dispatch_id)
        with structlog.contextvars.bound_contextvars(
            bill_id=bill.id,
            integration_config_id=config.id,
            run_id=run_id,
            dispatch_id=envelope.dispatch_id,
        ):
            if not scheduled and self.collect is not None and self.scheduled(config):
                await self.collect(envelope)
                # WAITING, durably, before the dispatch offset is committed.
                await (await self._emit_run(envelope, run_id, RunStatus.WAITING))
                self._run_started.pop(run_id, None)
                return
            key = map_key(config.id, bill.id)
            waiting = self._waiting.setdefault(key, collections.Counter())
            waiting[bill.version] += 1
            try:
                async with self._key_locks.hold(key):
                    await self._process_guarded(envelope, run_id)
            finally:
                waiting[bill.version] -= 1
                if waiting[bill.version] <= 0:
                    del waiting[bill.version]
                if not waiting:
                    self._waiting.pop(key, None)

    def _newer_waiting(self, envelope: DispatchEnvelope) -> int | None:
        """The newest version of the same bill for the same configuration that already
        waits in this sink, when it is newer than this envelope's."""
        bill = envelope.bill
        waiting = self._waiting.get(map_key(envelope.integration_config.id, bill.id))
        newest = max(waiting, default=None) if waiting else None
        return newest if newest is not None and newest > bill.version else None

    async def apply_status(self, update: ExternalStatusUpdate) -> None:
        """A provider-side status (finalized, paid, void) reaches the invoice map, under
        the same lock a delivery of that bill holds; never moves a state backwards."""
        if not update.entity_id or not update.integration_config_id:
            return
        key = map_key(update.integration_config_id, update.entity_id)
        async with self._key_locks.hold(key):
            current = self.state.invoice_record(key)
            changed = locked_record(current, update) if current else None
            if changed is not None:
                await self.state.put_invoice_record(changed)
                log.info("invoice_status_applied", state=changed.state.value, key=key)

    async def _process_guarded(self, envelope: DispatchEnvelope, run_id: str) -> None:
        try:
            await self._process_locked(envelope, run_id)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug must not silently drop the bill: record it
            reference = "ie_" + uuid.uuid4().hex[:12]
            log.exception("sink_internal_error", reference=reference, exception=type(exc).__name__)
            await self._internal_error(envelope, run_id, exc, reference)
        finally:
            self._run_started.pop(run_id, None)
            self._run_attempt.pop(run_id, None)

    async def _internal_error(
        self, envelope: DispatchEnvelope, run_id: str, exc: Exception, reference: str
    ) -> None:
        """Our own bug: its own event and metric; the operator reads a reference to the
        logged traceback, never the exception's text (it may hold bill data or secrets)."""
        m.INTERNAL_ERRORS.labels(self.family, type(exc).__name__).inc()
        error = InternalError(
            f"internal error in billsync (reference {reference}); the bill was not "
            "delivered. This is not a problem with the destination account: resend the bill "
            "once billsync is fixed"
        )
        await self._finish(envelope, run_id, RunStatus.ERROR, error=error.message, event=error)

    async def _process_locked(self, envelope: DispatchEnvelope, run_id: str) -> None:
        config = envelope.integration_config
        bill = envelope.bill
        key = map_key(config.id, bill.id)
        existing = self.state.invoice_record(key)
        if (
            existing
            and existing.has_completed(envelope.dispatch_id)
            and not envelope.resend_of_run_id
        ):
            m.DEDUPLICATED.labels(self.family).inc()
            log.info("dispatch_already_delivered", external_id=existing.external_id)
            # Durable before the record counts as finished (its offset is then committed).
            await (
                await self._emit_run(
                    envelope, run_id, RunStatus.COMPLETE, existing.external_id, existing.url
                )
            )
            return
        if (
            existing
            and existing.bill_version > bill.version
            and existing.state is not InvoiceState.PENDING
        ):
            await self._finish(
                envelope,
                run_id,
                RunStatus.SKIPPED,
                error=f"bill version {bill.version} is older than version "
                f"{existing.bill_version} already delivered",
            )
            return
        newer = self._newer_waiting(envelope)
        if newer is not None:
            await self._finish(envelope, run_id, RunStatus.SKIPPED, error=_superseded(newer))
            return
        current = self.state.config(config.id)
        if current is not None and not current.enabled:
            await self._finish(
                envelope,
                run_id,
                RunStatus.DISABLED,
                error="configuration is disabled; re-enable it and resend",
            )
            return
        try:
            system = self.destination.external_system
            mappings = bill_mappings(bill, config, system, self.state.mappings_for)
            customer = resolve_customer(
                bill.account_id, config, mappings.rows, system, self.destination.customer_table
            )
            credential = self._credential_for(config)
            # A PENDING record left by an earlier attempt means a write may have happened.
            recovering = existing is not None and existing.state is InvoiceState.PENDING
            result, existing = await self._deliver_with_retries(
                envelope, run_id, customer, mappings, credential, existing, recovering
            )
        except Parked as parked:
            # Not final: the run waits for the quota's reset (the offset moves on).
            await (
                await self._emit_run(
                    envelope, run_id, RunStatus.RATE_LIMIT_RETRY, error=parked.message
                )
            )
            return
        except SinkError as err:
            status = err.run_status if err.run_status.is_final else RunStatus.ERROR
            await self._finish(envelope, run_id, status, error=err.message, event=err)
            return
        with self._delivering():  # recording what the provider now holds is delivery too
            await self._write_map(envelope, run_id, result.state, result, existing)
            await self._finish(
                envelope,
                run_id,
                result.status,
                result.external_id,
                result.url,
                error=result.message,
            )
        self.delivered += 1

    async def _deliver_with_retries(
        self,
        envelope: DispatchEnvelope,
        run_id: str,
        customer: str,
        mappings: BillMappings,
        credential: Credential,
        existing: InvoiceMapRecord | None,
        recovering: bool,
    ) -> tuple[DeliveryResult, InvoiceMapRecord]:
        """Attempts until a result; returns it with the map record it builds on. The run
        is marked STARTED, and the PENDING marker written, once delivery really begins
        (the first time this envelope holds a delivery slot), not while it queues."""
        config = envelope.integration_config
        client, limiter = self._client_for(config, credential)
        policy = self.options.retry_policy
        attempt = 1
        began = False
        while True:
            self._run_attempt[run_id] = attempt
            calls = self._calls(limiter, credential.id)
            try:
                urgent = attempt > 1
                async with self._slots(config, urgent):
                    with self._delivering():
                        if not began:
                            began = True
                            await (await self._emit_run(envelope, run_id, RunStatus.STARTED))
                            if existing is None:
                                # From here on a write may happen: a later attempt (or the
                                # next owner after a crash) looks the invoice up first.
                                existing = await self._write_map(
                                    envelope, run_id, InvoiceState.PENDING
                                )
                        assert existing is not None  # written when delivery began
                        request = DeliveryRequest(
                            envelope,
                            config,
                            customer,
                            existing if existing.external_id else None,
                            recovering,
                            attempt,
                            run_id,
                            mappings,
                        )
                        # Each provider call is bounded by `delivery_timeout` once the
                        # limiter admits it (ProviderCalls; the batch path's too): waiting
                        # for the limiter behind a backlog is not a timeout.
                        result = await self._deliver(request, credential, client, calls)
                        return result, existing
            except QuotaExhaustedError as err:
                # Not an attempt: the provider was not called. Park until the reset.
                m.RETRIES.labels(self.family, type(err).__name__).inc()
                if self.park is not None:
                    await self.park(envelope, err.reset_at)
                    raise Parked(err.message) from err
                await self._emit_run(envelope, run_id, err.run_status, error=err.message)
                await asyncio.sleep(err.retry_after or 1.0)  # no store: wait in this task
                recovering = True
            except RetriableError as err:
                if attempt >= policy.max_attempts:
                    status = (
                        RunStatus.TIMEOUT_LIMIT_EXCEEDED
                        if isinstance(err, ProviderTimeoutError)
                        else RunStatus.ERROR
                    )
                    message = f"gave up after {attempt} attempts: {err.message}"
                    left = await self._abandon(existing, request, client, limiter, credential.id)
                    final = SinkError(message + left)
                    final.run_status = status
                    raise final from err
                delay = policy.delay(attempt, err.retry_after)
                m.RETRIES.labels(self.family, type(err).__name__).inc()
                log.info(
                    "delivery_retry",
                    attempt=attempt,
                    delay=round(delay, 3),
                    error=err.message[:300],
                )
                await self._emit_run(envelope, run_id, err.run_status, error=err.message)
                await m.wait_for_retry(self.family, config.id, delay)  # outside the slots
                newer = self._newer_waiting(envelope)
                if newer is not None:
                    raise Superseded(_superseded(newer)) from err
                attempt += 1
                recovering = True
            except FatalBillError as err:
                err.message += await self._abandon(
                    existing, request, client, limiter, credential.id
                )
                raise

    async def _abandon(
        self,
        existing: InvoiceMapRecord | None,
        last: DeliveryRequest,
        client: Any,
        limiter: CallLimiter,
        credential_id: str,
    ) -> str:
        """The run ends in error after a write may have happened: a bill delivered for the
        first time must not stay half-written at the provider (`SinkDestination.abandon`).
        Returns what was done, for the run's message. Best effort: it never fails the
        run a second time."""
        if existing is None or existing.external_id:
            return ""  # nothing was begun, or an earlier complete delivery stands
        calls = self._calls(limiter, credential_id)
        request = replace(last, existing=None, recovering=True)
        try:
            done = await self.destination.abandon(request, client, calls)
        except (SinkError, TimeoutError) as exc:
            log.warning("abandon_failed", error=getattr(exc, "message", type(exc).__name__))
            return "; an incomplete invoice may remain at the provider"
        return f"; {done}" if done else ""

    # ---- edges: credentials, clients, records ---------------------------------------

    def _credential_for(self, config: IntegrationConfig) -> Credential:
        cred_id = config.integration_credentials_id
        if not cred_id:
            raise AuthenticationError(
                f"configuration {config.id} has no credential attached; add one"
            )
        credential = self.state.credential(cred_id)
        if credential is None:
            raise AuthenticationError(f"credential {cred_id!r} does not exist")
        if type(credential) is not self.destination.credential_type:
            raise AuthenticationError(
                f"credential {cred_id!r} is a {credential.type.value} credential; "
                f"{config.destination.value} needs a {self.family.upper()} credential"
            )
        return credential

    @contextlib.asynccontextmanager
    async def _slots(self, config: IntegrationConfig, urgent: bool) -> AsyncIterator[None]:
        """Delivery slots (per configuration and overall) on the single path. A batch
        member waits for its batch without one: the batch call itself is bounded by the
        provider's limits (concurrency included), and slots would cap batches at the
        per-configuration concurrency."""
        if self.batch is not None:
            yield
            return
        async with (
            self._config_slots.get(config.id).hold(urgent),
            self._global_slots.hold(urgent),
        ):
            yield

    def _calls(self, limiter: CallLimiter, credential_id: str) -> ProviderCalls:
        return ProviderCalls(
            self.family,
            limiter,
            self.destination.classify,
            credential_id,
            self.options.delivery_timeout,
        )

    async def _deliver(
        self, request: DeliveryRequest, credential: Credential, client: Any, calls: ProviderCalls
    ) -> DeliveryResult:
        if self.batch is not None:
            return await self.batch.deliver(request, credential)
        return await self.destination.deliver(request, client, calls)

    def _client_for(
        self, config: IntegrationConfig, credential: Credential
    ) -> tuple[Any, CallLimiter]:
        key = (credential.id, credential.version, config.destination.value)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self.destination.make_client(
                config.destination, credential
            )
        return client, self._limiter_for(config, credential)

    def _limiter_for(self, config: IntegrationConfig, credential: Credential) -> CallLimiter:
        limits = self.destination.provider_limits(config.destination, credential)
        if limits is not None:
            tenant = self.destination.tenant_of(config, credential)
            lkey = ("limits", limit_key(limits.scope, credential.id, tenant))
            limiter = self._limiters.get(lkey)
            if limiter is None:
                limiter = self._limiters[lkey] = QuotaLimiter(limits)
            return limiter
        lkey = (credential.id, config.destination.value)
        limiter = self._limiters.get(lkey)
        if limiter is None:
            limiter = self._limiters[lkey] = AdaptiveRateLimiter(
                self.destination.rate_spec(config.destination, credential)
            )
        return limiter

    async def _write_map(
        self,
        envelope: DispatchEnvelope,
        run_id: str,
        state: InvoiceState,
        result: DeliveryResult | None = None,
        previous: InvoiceMapRecord | None = None,
    ) -> InvoiceMapRecord:
        config, bill = envelope.integration_config, envelope.bill
        previous = previous or self.state.invoice_record(map_key(config.id, bill.id))
        done = list(previous.completed_dispatch_ids) if previous else []
        if result is not None:
            done = [*done, envelope.dispatch_id][-RECENT_DISPATCHES:]
        record = InvoiceMapRecord(
            integration_config_id=config.id,
            bill_id=bill.id,
            bill_version=bill.version,
            # A lock a status update recorded meanwhile stays (the provider's word).
            state=keep_lock(previous, state) if result is not None else state,
            external_id=(result.external_id if result else None)
            or (previous.external_id if previous else None),
            url=(result.url if result else None) or (previous.url if previous else None),
            external_item_ids=result.external_item_ids
            if result
            else (previous.external_item_ids if previous else []),
            completed_dispatch_ids=done,
            last_run_id=run_id,
            updated_at=_now(),
        )
        await self.state.put_invoice_record(record)
        return record

    async def _emit_run(
        self,
        envelope: DispatchEnvelope,
        run_id: str,
        status: RunStatus,
        external_id: str | None = None,
        url: str | None = None,
        error: str | None = None,
    ) -> Awaitable[Any]:
        config = envelope.integration_config
        run = IntegrationRun(
            id=run_id,
            entity_id=envelope.bill.id,
            entity_version=envelope.bill.version,
            integration_config_id=config.id,
            integration_config_version=config.version,
            destination=config.destination,
            status=status,
            dt_started=self._run_started.setdefault(run_id, _now()),
            dt_completed=_now() if status.is_final else None,
            external_id=external_id,
            url=url,
            error=error,
            dispatch_id=envelope.dispatch_id,
            trigger=envelope.trigger.value,
            attempt=self._run_attempt.get(run_id, 1),
            account_id=envelope.bill.account_id,
            source=envelope.source,
            replayed_from_run_id=envelope.resend_of_run_id,
        )
        return await self.state.send_result(run)

    async def _finish(
        self,
        envelope: DispatchEnvelope,
        run_id: str,
        status: RunStatus,
        external_id: str | None = None,
        url: str | None = None,
        error: str | None = None,
        event: SinkError | None = None,
    ) -> None:
        config = envelope.integration_config
        pending: list[Awaitable[Any]] = [
            await self._emit_run(envelope, run_id, status, external_id, url, error)
        ]
        if event is not None and event.event_type is not None:
            record = IntegrationEvent(
                id="evt_"
                + hashlib.sha256(f"{run_id}:{event.event_type}".encode()).hexdigest()[:24],
                event_type=event.event_type,
                message=event.message,
                integration_config_id=config.id,
                integration_run_id=run_id,
                entity_id=envelope.bill.id,
                destination=config.destination,
                dt_created=_now(),
            )
            pending.append(await self.state.send_result(record))
        await asyncio.gather(*pending)
        m.record_run(self.family, envelope, status)
        log.info(
            "run_finished",
            status=status.value,
            external_id=external_id,
            error=(error or "")[:300] or None,
        )


Collect = Callable[[DispatchEnvelope], Awaitable[Any]]
Park = Callable[[DispatchEnvelope, datetime], Awaitable[Any]]


class Parked(SinkError):
    """The envelope waits in the schedule store for a quota's reset (not a final state)."""

    run_status = RunStatus.RATE_LIMIT_RETRY
    event_type = None


class Superseded(SinkError):
    """A newer version of the bill for the same configuration waits: only it is sent (a
    finalizing configuration would otherwise lock the invoice on the older version)."""

    run_status = RunStatus.SKIPPED
    event_type = None


def _superseded(newer: int) -> str:
    return f"superseded by bill version {newer}, which is delivered instead"
