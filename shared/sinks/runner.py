"""SinkRunner: consumes a dispatch topic and delivers every envelope through a destination.

Guarantees (DESIGN.md section 6):
- at-least-once: a partition's offset is committed only past envelopes whose run result
  (and invoice-map record) the broker has acknowledged;
- nothing doubled: dispatch ids already completed are not written again; a PENDING marker
  makes the attempt after a crash look the invoice up before writing; same bill + config
  deliveries are serialised;
- isolation: retries sleep inside their own task (the partition keeps flowing), with
  bounded concurrency per configuration and overall; fetching pauses at max_in_flight."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import pydantic
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from shared.contracts import (
    DispatchEnvelope,
    ExternalMapping,
    IntegrationConfig,
    IntegrationConfigAdapter,
    IntegrationEvent,
    IntegrationRun,
    RunStatus,
)
from shared.credentials import Credential, CredentialCipher
from shared.credentials.store import CredentialStore
from shared.kafka.client_options import kafka_options
from shared.kafka.deadletter import send_dead_letter
from shared.kafka.lag import LagWatcher
from shared.kafka.producer import make_producer
from shared.kafka.table import CompactedTable
from shared.kafka.topics import ensure_topics
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger
from shared.settings import Settings
from shared.sinks import metrics as m
from shared.sinks.customers import MappingIndex, resolve_customer
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls, SinkDestination
from shared.sinks.errors import (
    AuthenticationError,
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
from shared.sinks.locks import KeyedLocks, KeyedSlots, PrioritySlots
from shared.sinks.offsets import OffsetTracker
from shared.sinks.options import SinkOptions
from shared.sinks.ratelimit import AdaptiveRateLimiter

log = get_logger("sink")


def run_id_for(dispatch_id: str) -> str:
    """One run per dispatch (its retries update it), so a redelivery reuses the run id."""
    return "run_" + hashlib.sha256(dispatch_id.encode()).hexdigest()[:24]


def _now() -> datetime:
    return datetime.now(UTC)


class SinkRunner:
    def __init__(
        self,
        settings: Settings,
        destination: SinkDestination[Any],
        options: SinkOptions | None = None,
        cipher: CredentialCipher | None = None,
    ) -> None:
        self.settings = settings
        self.destination = destination
        self.options = options or SinkOptions()
        self.family = destination.family
        topics = settings.topics
        bootstrap = settings.kafka_bootstrap_servers
        self.topic = topics.dispatch(self.family)
        self.results_topic = topics.name("integration_results")
        self.map_topic = topics.name("invoice_map")
        self.configs = CompactedTable[IntegrationConfig](
            topics.name("integration_configs"), bootstrap, IntegrationConfigAdapter.validate_json
        )
        self.mapping_index = MappingIndex()
        self.mappings = CompactedTable[ExternalMapping](
            topics.name("external_mappings"),
            bootstrap,
            ExternalMapping.model_validate_json,
            self.mapping_index.apply,
        )
        self.invoice_map = CompactedTable[InvoiceMapRecord](
            self.map_topic, bootstrap, InvoiceMapRecord.model_validate_json
        )
        self.credentials = CredentialStore(
            topics.name("credentials"),
            bootstrap,
            cipher or CredentialCipher(settings.credentials_key),
        )
        self.producer = make_producer(bootstrap)
        self.consumer = AIOKafkaConsumer(
            **kafka_options(bootstrap),
            group_id=f"{settings.consumer_group_prefix}-{self.family}-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.lag = LagWatcher(self.consumer, f"{settings.consumer_group_prefix}-{self.family}-sink")
        # Per assigned partition: its offsets and the tasks handling its records.
        self._trackers: dict[TopicPartition, OffsetTracker] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        # Tasks inside a delivery (holding slots, calling the provider, recording the
        # result): a stop or a revoke gives them a bounded time; every other task (queued,
        # or sleeping before a retry) is abandoned at once and its offset left uncommitted.
        self._busy: set[asyncio.Task[Any]] = set()
        self._busy_changed = asyncio.Event()
        self._key_locks = KeyedLocks()
        self._config_slots = KeyedSlots(self.options.per_config_concurrency)
        self._global_slots = PrioritySlots(self.options.max_concurrency)
        self._clients: dict[tuple[str, int, str], Any] = {}
        self._limiters: dict[tuple[str, str], AdaptiveRateLimiter] = {}
        self._in_flight = 0
        self._run_started: dict[str, datetime] = {}  # a run keeps its first start time
        self._run_attempt: dict[str, int] = {}  # the attempt its records carry
        # Bill versions fetched and not yet finished, per configuration and bill.
        self._waiting: dict[str, collections.Counter[int]] = {}
        self._paused = False
        self._running = False
        self._started = False
        self.delivered = 0

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await ensure_topics(self.settings)
        await self.producer.start()
        for table in (self.configs, self.mappings, self.invoice_map):
            await table.start()
        await self.credentials.start()
        await self.consumer.start()
        self.lag.start()
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        self._started = True
        log.info("sink_started", destination=self.family, topic=self.topic)

    async def stop(self) -> None:
        """Finish what is being delivered (at most `stop_grace` seconds), abandon the rest
        uncommitted (the next owner of the partition delivers it), commit, leave."""
        self._running = False
        await self._release(list(self._trackers), self.options.stop_grace)
        await self.lag.stop()
        await self.consumer.stop()
        await self.credentials.stop()
        for table in (self.configs, self.mappings, self.invoice_map):
            await table.stop()
        for client in self._clients.values():
            await self.destination.close_client(client)
        await self.producer.stop()

    def health(self) -> dict[str, Any]:
        tables = (self.configs, self.mappings, self.invoice_map, self.credentials.table)
        return {
            "ok": self._started and all(t.ready.is_set() for t in tables),
            "inFlight": self._in_flight,
            "paused": self._paused,
            "delivered": self.delivered,
        }

    # ---- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        self._running = True
        loop = asyncio.get_running_loop()
        last_commit = loop.time()
        while self._running:
            self._apply_backpressure()
            batches = await self.consumer.getmany(timeout_ms=100, max_records=500)
            for tp, records in batches.items():
                tracker = self._trackers.get(tp)
                if tracker is None:
                    continue  # fetched before a revoke: its new owner reads it again
                tasks = self._tasks.setdefault(tp, set())
                for record in records:
                    tracker.start(record.offset)
                    self._in_flight += 1
                    task = asyncio.create_task(self._handle(tracker, record))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            m.IN_FLIGHT.labels(self.family).set(self._in_flight)
            if loop.time() - last_commit >= self.options.commit_interval:
                await self._commit()
                last_commit = loop.time()

    def _apply_backpressure(self) -> None:
        full = self._in_flight >= self.options.max_in_flight
        if full and not self._paused:
            self.consumer.pause(*self.consumer.assignment())
        elif not full and self._paused:
            self.consumer.resume(*self.consumer.assignment())
        self._paused = full
        m.PAUSED.labels(self.family).set(1 if full else 0)

    async def _commit(self, partitions: list[TopicPartition] | None = None) -> None:
        offsets: dict[TopicPartition, int] = {}
        for tp in self._trackers if partitions is None else partitions:
            tracker = self._trackers.get(tp)
            offset = tracker.committable() if tracker else None
            if offset is not None and self._committed.get(tp) != offset:
                offsets[tp] = offset
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
            self._committed.update(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # The group moved on (a rebalance): the revoke/assign callbacks reset the
            # partitions; what was not committed is delivered again and de-duplicated.
            log.warning("commit_failed", destination=self.family, error=type(exc).__name__)

    # ---- rebalance and stop ---------------------------------------------------------

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Fresh trackers: the group's committed offset is where fetching resumes."""
        for tp in assigned:
            self._trackers[tp] = OffsetTracker()
            self._committed.pop(tp, None)
            self._tasks.setdefault(tp, set())
        self._paused = False  # new partitions start resumed; the loop pauses them if full
        log.info("partitions_assigned", partitions=sorted(str(tp) for tp in assigned))

    async def _release(self, partitions: list[TopicPartition], grace: float) -> None:
        """Give up partitions (revoke or stop): deliveries under way get `grace` seconds,
        everything else is cancelled; only finished work is committed."""
        tasks = [t for tp in partitions for t in self._tasks.get(tp, ())]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while True:
            for task in tasks:
                if task not in self._busy:
                    task.cancel()
            busy = [t for t in tasks if not t.done() and t in self._busy]
            left = deadline - loop.time()
            if not busy or left <= 0:
                break
            self._busy_changed.clear()
            changed = asyncio.ensure_future(self._busy_changed.wait())
            await asyncio.wait([*busy, changed], timeout=left, return_when="FIRST_COMPLETED")
            changed.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._commit(partitions)
        abandoned = 0
        for tp in partitions:
            tracker = self._trackers.pop(tp, None)
            abandoned += tracker.in_flight if tracker else 0
            self._committed.pop(tp, None)
            self._tasks.pop(tp, None)
        log.info(
            "partitions_released",
            partitions=sorted(str(tp) for tp in partitions),
            abandoned=abandoned,
        )

    @contextlib.contextmanager
    def _delivering(self) -> Any:
        """Mark the current task as delivering (see `_busy`)."""
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._busy.add(task)
        try:
            yield
        finally:
            self._busy.discard(task)
            self._busy_changed.set()

    async def _handle(self, tracker: OffsetTracker, record: ConsumerRecord[bytes, bytes]) -> None:
        finished = False
        try:
            try:
                envelope = DispatchEnvelope.model_validate_json(record.value or b"")
            except pydantic.ValidationError as exc:
                m.DEAD_LETTERED.labels(self.family).inc()
                await (
                    await send_dead_letter(
                        self.producer,
                        self.settings.topics.name("dead_letter"),
                        record,
                        f"schema: {exc.errors()[:3]}",
                        f"{self.family}-sink",
                    )
                )
                finished = True
                return
            await self.process(envelope)
            finished = True
        finally:
            # Cancelled (stop, revoke): not finished, so the commit never passes it.
            if finished:
                tracker.finish(record.offset)
            self._in_flight -= 1

    # ---- one envelope ---------------------------------------------------------------

    async def process(self, envelope: DispatchEnvelope) -> None:
        config = envelope.integration_config
        bill = envelope.bill
        run_id = run_id_for(envelope.dispatch_id)
        with structlog.contextvars.bound_contextvars(
            bill_id=bill.id,
            integration_config_id=config.id,
            run_id=run_id,
            dispatch_id=envelope.dispatch_id,
        ):
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
        existing = self.invoice_map.get(key)
        if (
            existing
            and existing.has_completed(envelope.dispatch_id)
            and not envelope.resend_of_run_id
        ):
            m.DEDUPLICATED.labels(self.family).inc()
            log.info("dispatch_already_delivered", external_id=existing.external_id)
            await self._emit_run(
                envelope, run_id, RunStatus.COMPLETE, existing.external_id, existing.url
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
        current = self.configs.get(config.id)
        if current is not None and not current.enabled:
            await self._finish(
                envelope,
                run_id,
                RunStatus.DISABLED,
                error="configuration is disabled; re-enable it and resend",
            )
            return
        try:
            customer = resolve_customer(
                bill.account_id,
                config,
                self.mapping_index.for_account(self.destination.external_system, bill.account_id),
                self.destination.external_system,
            )
            credential = self._credential_for(config)
            # A PENDING record left by an earlier attempt means a write may have happened.
            recovering = existing is not None and existing.state is InvoiceState.PENDING
            result, existing = await self._deliver_with_retries(
                envelope, run_id, customer, credential, existing, recovering
            )
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
            calls = ProviderCalls(self.family, limiter, self.destination.classify, credential.id)
            try:
                urgent = attempt > 1
                async with (
                    self._config_slots.get(config.id).hold(urgent),
                    self._global_slots.hold(urgent),
                ):
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
                        )
                        try:
                            result = await asyncio.wait_for(
                                self.destination.deliver(request, client, calls),
                                self.options.delivery_timeout,
                            )
                            return result, existing
                        except TimeoutError as exc:
                            raise ProviderTimeoutError(
                                f"no answer within {self.options.delivery_timeout:.0f}s"
                            ) from exc
            except RetriableError as err:
                if attempt >= policy.max_attempts:
                    status = (
                        RunStatus.TIMEOUT_LIMIT_EXCEEDED
                        if isinstance(err, ProviderTimeoutError)
                        else RunStatus.ERROR
                    )
                    final = SinkError(f"gave up after {attempt} attempts: {err.message}")
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

    # ---- edges: credentials, clients, records ---------------------------------------

    def _credential_for(self, config: IntegrationConfig) -> Credential:
        cred_id = config.integration_credentials_id
        if not cred_id:
            raise AuthenticationError(
                f"configuration {config.id} has no credential attached; add one"
            )
        credential = self.credentials.get(cred_id)
        if credential is None:
            raise AuthenticationError(f"credential {cred_id!r} does not exist")
        if type(credential) is not self.destination.credential_type:
            raise AuthenticationError(
                f"credential {cred_id!r} is a {credential.type.value} credential; "
                f"{config.destination.value} needs a {self.family.upper()} credential"
            )
        return credential

    def _client_for(
        self, config: IntegrationConfig, credential: Credential
    ) -> tuple[Any, AdaptiveRateLimiter]:
        key = (credential.id, credential.version, config.destination.value)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self.destination.make_client(
                config.destination, credential
            )
        lkey = (credential.id, config.destination.value)
        limiter = self._limiters.get(lkey)
        if limiter is None:
            limiter = self._limiters[lkey] = AdaptiveRateLimiter(
                self.destination.rate_spec(config.destination, credential)
            )
        return client, limiter

    async def _write_map(
        self,
        envelope: DispatchEnvelope,
        run_id: str,
        state: InvoiceState,
        result: DeliveryResult | None = None,
        previous: InvoiceMapRecord | None = None,
    ) -> InvoiceMapRecord:
        config, bill = envelope.integration_config, envelope.bill
        previous = previous or self.invoice_map.get(map_key(config.id, bill.id))
        done = list(previous.completed_dispatch_ids) if previous else []
        if result is not None:
            done = [*done, envelope.dispatch_id][-RECENT_DISPATCHES:]
        record = InvoiceMapRecord(
            integration_config_id=config.id,
            bill_id=bill.id,
            bill_version=bill.version,
            state=state,
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
        await self.producer.send_and_wait(
            self.map_topic, record.to_bytes(), key=record.key.encode()
        )
        self.invoice_map.data[record.key] = record  # visible now, before the table catches up
        return record

    async def _emit_run(
        self,
        envelope: DispatchEnvelope,
        run_id: str,
        status: RunStatus,
        external_id: str | None = None,
        url: str | None = None,
        error: str | None = None,
    ) -> asyncio.Future[Any]:
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
        future: asyncio.Future[Any] = await self.producer.send(
            self.results_topic, run.to_bytes(), key=config.id.encode()
        )
        return future

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
        pending = [await self._emit_run(envelope, run_id, status, external_id, url, error)]
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
            pending.append(
                await self.producer.send(
                    self.results_topic, record.to_bytes(), key=config.id.encode()
                )
            )
        await asyncio.gather(*pending)
        m.record_run(self.family, envelope, status)
        log.info(
            "run_finished",
            status=status.value,
            external_id=external_id,
            error=(error or "")[:300] or None,
        )


class Superseded(SinkError):
    """A newer version of the bill for the same configuration waits: only it is sent (a
    finalizing configuration would otherwise lock the invoice on the older version)."""

    run_status = RunStatus.SKIPPED
    event_type = None


def _superseded(newer: int) -> str:
    return f"superseded by bill version {newer}, which is delivered instead"


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: SinkRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.runner._release(list(revoked), self.runner.options.revoke_grace)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.runner.on_assigned(assigned)


@contextlib.asynccontextmanager
async def running_sink(runner: SinkRunner) -> Any:
    """Start, run in the background, and stop a runner (tests and `billsync <x>-sink`)."""
    await runner.start()
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        await cancel_and_wait(task)
        await runner.stop()
