"""The router's Kafka edge: consume bills, route with the pure core, produce envelopes,
commit an input offset only after every dispatch it caused is acknowledged.

Bills are decoded by the fast decoder (`shared.contracts.fastbill`) and, where it cannot
vouch for one, by the pydantic contract: every bill that goes out is valid under the
contract, and a refused one is dead-lettered with the contract's reason.

Rebalances: before partitions are revoked, the batches already routed are acknowledged
and committed (bounded wait); a batch fetched before a rebalance never commits afterwards
(its partitions may belong to another router now, whose commits it would move back), so
its records are routed again by their owner and the sinks recognise the repeated
dispatch ids. Commits name only partitions this router holds."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pydantic
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, IllegalStateError, MessageSizeTooLargeError
from prometheus_client import Counter

from services.router import metrics as m
from services.router.envelopes import (
    EnvelopeBuilder,
    ModelPreparedBills,
    PreparedBills,
    RawPreparedBills,
)
from shared.contracts import (
    Account,
    Bill,
    Destination,
    ExternalMapping,
    IntegrationConfig,
    ReplayRequest,
    Trigger,
    parse_config,
)
from shared.contracts.fastbill import decode_bill
from shared.filters import FilterSyntaxError
from shared.kafka.client_options import kafka_options
from shared.kafka.deadletter import send_dead_letter
from shared.kafka.lag import LagWatcher
from shared.kafka.producer import BatchSender, make_producer
from shared.kafka.table import CompactedTable
from shared.kafka.topics import ensure_topics
from shared.logging import get_logger
from shared.observability import ObservabilityServer
from shared.routing import CompiledRoute, FilterReason, RouteIndex, compile_route
from shared.routing.rules import account_view
from shared.settings import Settings
from shared.sinks.partitioning import dispatch_key

log = get_logger("router")

SERVICE = "router"
# The broker's default record-batch limit is 1,048,588 bytes (message.max.bytes); below
# this an envelope joins the round's batches, above it it goes alone, through a producer
# allowed larger requests (compressed, a bill of several MB fits the broker's limit).
DISPATCH_MAX_BYTES = 1_000_000
DISPATCH_COMPRESSION = "zstd"
LARGE_REQUEST_MAX_BYTES = 64 * 1024 * 1024
# How long a revoke waits for routed batches to be acknowledged and committed.
REVOKE_WAIT_S = 10.0


class MalformedEvent(Exception):
    """An input that can never be routed as it is; it goes to the dead-letter topic."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def _decode_config(raw: bytes) -> CompiledRoute:
    try:
        return compile_route(parse_config(raw))
    except FilterSyntaxError as exc:  # a config written around the validating tools
        raise ValueError(str(exc)) from exc


class RouterService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        topics = settings.topics
        self.topic_generated = topics.name("bill_generated")
        self.topic_approved = topics.name("bill_approved")
        self.topic_replay = topics.name("bill_replay")
        self.topic_dead_letter = topics.name("dead_letter")
        bootstrap = settings.kafka_bootstrap_servers
        self.routes: dict[str, CompiledRoute] = {}
        self.index = RouteIndex()
        # Per accounts-table record: (account, filter view, JSON), reused across its bills.
        self._views: dict[str, tuple[Account, dict[str, Any], bytes]] = {}
        self.configs = CompactedTable[CompiledRoute](
            topics.name("integration_configs"), bootstrap, _decode_config, self._config_changed
        )
        self.accounts = CompactedTable[Account](
            topics.name("accounts"), bootstrap, Account.model_validate_json
        )
        self.mappings = CompactedTable[ExternalMapping](
            topics.name("external_mappings"), bootstrap, ExternalMapping.model_validate_json
        )
        # Dispatches are zstd-compressed: a consumer batch of envelopes shrinks about
        # fourteen times (bills repeat their keys and products), which costs the router
        # no more CPU than it saves in checksums and copies, and spares the broker, its
        # disk and every sink most of the bytes (docs/benchmarks.md, router).
        self.producer = make_producer(bootstrap, compression_type=DISPATCH_COMPRESSION)
        self.consumer = AIOKafkaConsumer(
            **kafka_options(bootstrap),
            group_id=f"{settings.consumer_group_prefix}-router",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self.lag = LagWatcher(self.consumer, f"{settings.consumer_group_prefix}-router")
        self.consumer.subscribe(
            [self.topic_generated, self.topic_approved, self.topic_replay],
            listener=_Rebalance(self),
        )
        self.http = ObservabilityServer(SERVICE, self._health)
        self._builder = EnvelopeBuilder()
        # Where each configuration's dispatches go, per configuration id (and version).
        self._targets: dict[str, _Target] = {}
        self._routed_at: str | None = None
        self.dispatch_max_bytes = DISPATCH_MAX_BYTES
        self._sender = BatchSender(self.producer)  # the dispatches of one consumer batch
        self._large_producer: AIOKafkaProducer | None = None
        self._large_lock = asyncio.Lock()
        # Batches routed and not yet committed, oldest first (see run()).
        self._outstanding: deque[asyncio.Task[None]] = deque()
        # Bumped on every revoke: a batch fetched under an older generation never commits.
        self._generation = 0
        self._assigned: set[TopicPartition] = set()
        # Labelled metric children, looked up once, and counted per batch (labels() and
        # inc() each cost more per bill than the routing decision).
        self._counts: dict[Counter, int] = defaultdict(int)
        self._consumed = {
            t: m.EVENTS_CONSUMED.labels(t)
            for t in (self.topic_generated, self.topic_approved, self.topic_replay)
        }
        self._filtered = {r: m.FILTERED.labels(r.value) for r in FilterReason}
        self._dispatched = {d: m.DISPATCHES.labels(d.value) for d in Destination}
        self._dispatch_topics = {d: topics.dispatch(d.family) for d in Destination}
        self._running = False
        self._started = False
        self.routed_bills = 0

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await ensure_topics(self.settings)
        await self.producer.start()
        for table in (self.configs, self.accounts, self.mappings):
            await table.start()
        await self.consumer.start()
        self.lag.start()
        port = await self.http.start(self.settings.http_host, self.settings.http_port)
        self._started = True
        log.info("router_started", http_port=port, configurations=len(self.routes))

    async def stop(self) -> None:
        self._running = False
        await self.http.stop()
        await self.lag.stop()
        await self.consumer.stop()
        for table in (self.configs, self.accounts, self.mappings):
            await table.stop()
        await self.producer.stop()
        if self._large_producer is not None:
            await self._large_producer.stop()

    def _health(self) -> dict[str, Any]:
        tables_ready = all(t.ready.is_set() for t in (self.configs, self.accounts, self.mappings))
        return {
            "ok": self._started and tables_ready,
            "configurations": len(self.routes),
            "accounts": len(self.accounts.data),
            "routedBills": self.routed_bills,
        }

    def _config_changed(self, key: str, route: CompiledRoute | None) -> None:
        if route is None:
            self.routes.pop(key, None)
        else:
            self.routes[key] = route
            log.info(
                "configuration_loaded",
                integration_config_id=key,
                version=route.config.version,
                enabled=route.config.enabled,
            )
        self.index = RouteIndex(self.routes.values())
        enabled = sum(1 for r in self.routes.values() if r.config.enabled)
        m.CONFIGS_LOADED.labels("true").set(enabled)
        m.CONFIGS_LOADED.labels("false").set(len(self.routes) - enabled)

    # ---- the loop -----------------------------------------------------------------

    async def run(self) -> None:
        """Consume while the previous batches' dispatches are being acknowledged; commits
        happen in batch order, each only after all of its batch's dispatches are acked."""
        self._running = True
        outstanding = self._outstanding
        try:
            while self._running:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=2000)
                if batches:
                    generation = self._generation
                    previous = outstanding[-1] if outstanding else None
                    pending, offsets, stamps = await self.route_batch(batches)
                    outstanding.append(
                        asyncio.create_task(
                            self._ack_then_commit(pending, offsets, stamps, previous, generation)
                        )
                    )
                while outstanding and (outstanding[0].done() or len(outstanding) > 3):
                    await outstanding.popleft()
        finally:
            if outstanding:
                await asyncio.gather(*outstanding, return_exceptions=True)
                outstanding.clear()

    async def process_batch(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        generation = self._generation
        pending, offsets, stamps = await self.route_batch(batches)
        await self._ack_then_commit(pending, offsets, stamps, None, generation)

    async def route_batch(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> tuple[list[Awaitable[object]], dict[TopicPartition, int], list[float]]:
        pending: list[Awaitable[object]] = []
        stamps: list[float] = []
        offsets: dict[TopicPartition, int] = {}
        self._routed_at = datetime.now(UTC).isoformat()  # one routing time per batch
        sender = self._sender
        await sender.open_round(self._dispatch_topics.values())
        counts = self._counts
        for tp, records in batches.items():
            counts[self._consumed[tp.topic]] += len(records)
            for record in records:
                pending.extend(self.handle(record))
                stamps.append(record.timestamp / 1000.0)
                if sender.has_full:  # a batch filled up: on its way while routing goes on
                    await sender.submit_full()
            offsets[tp] = records[-1].offset + 1
        pending.extend(await sender.flush())
        for counter, count in self._counts.items():
            counter.inc(count)
        self._counts.clear()
        return pending, offsets, stamps

    async def _ack_then_commit(
        self,
        pending: list[Awaitable[object]],
        offsets: dict[TopicPartition, int],
        stamps: list[float],
        previous: asyncio.Task[None] | None,
        generation: int,
    ) -> None:
        if pending:
            await asyncio.gather(*pending)  # every dispatch acknowledged by the broker
        if previous is not None:
            await previous  # commits stay in batch order
        now = time.time()
        for ts in stamps:
            m.ROUTING_LATENCY.observe(max(0.0, now - ts))
        if generation != self._generation:
            log.info("commit_skipped_after_rebalance", partitions=len(offsets))
            return
        owned = {tp: offset for tp, offset in offsets.items() if tp in self._assigned}
        if not owned:
            return
        try:
            await self.consumer.commit(owned)
        except (CommitFailedError, IllegalStateError):
            # Partitions moved in a rebalance: the new owner re-routes them and the sinks
            # recognise the repeated dispatch ids.
            log.warning("commit_failed_after_rebalance", partitions=len(owned))

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what was routed while the partitions are still ours, then forget them."""
        waiting = [task for task in self._outstanding if not task.done()]
        if waiting:
            _, late = await asyncio.wait(waiting, timeout=REVOKE_WAIT_S)
            if late:
                log.warning("revoke_left_batches_uncommitted", batches=len(late))
        self._generation += 1
        self._assigned -= revoked
        if revoked:
            log.info("partitions_revoked", partitions=sorted(str(tp) for tp in revoked))

    def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Fresh commit state: only batches fetched from now on commit, and only for these.
        self._generation += 1
        self._assigned = set(assigned)
        log.info("partitions_assigned", partitions=sorted(str(tp) for tp in assigned))

    def handle(self, record: ConsumerRecord[bytes, bytes]) -> list[Awaitable[object]]:
        """Routes one record. Its dispatches join the round's batches (route_batch submits
        them); the awaitables returned are its dead letter or oversized sends. Synchronous:
        a coroutine per record costs more than most routing decisions."""
        counts = self._counts  # consumed records are counted by route_batch
        source = f"{record.topic}/{record.partition}/{record.offset}"
        try:
            inbound = self._parse(record)
            account = self._account_for(inbound)
        except MalformedEvent as exc:
            return [asyncio.ensure_future(self._dead_letter_sent(record, exc))]
        view, account_json = self._view(account)
        result = self.index.route(
            inbound.account_id, view, inbound.trigger, inbound.approved, inbound.only
        )
        for reason, count in result.filtered.items():
            counts[self._filtered[reason]] += count
        self.routed_bills += 1
        if not result.matches:
            m.UNMATCHED.inc()
            return []
        configs = [match.route.config for match in result.matches]
        futures: list[Awaitable[object]] = []
        for config, _did, body in self._builder.build_prepared(
            inbound.bill_id,
            inbound.version,
            inbound.bills,
            account_json,
            configs,
            inbound.trigger,
            source,
            inbound.replay_id,
            self._routed_at,
        ):
            target = self._targets.get(config.id)
            if target is None or target.version != config.version:
                target = self._targets[config.id] = self._target(config)
            if len(body) > self.dispatch_max_bytes:
                futures.append(
                    asyncio.ensure_future(self._send_large(record, target.topic, config, body))
                )
            else:
                self._sender.add(target.topic, target.key, body)
            counts[target.dispatched] += 1
        return futures

    def _target(self, config: IntegrationConfig) -> _Target:
        return _Target(
            config.version,
            self._dispatch_topics[config.destination],
            dispatch_key(config).encode(),
            self._dispatched[config.destination],
        )

    async def _dead_letter_sent(
        self, record: ConsumerRecord[bytes, bytes], exc: MalformedEvent
    ) -> None:
        await (await self._dead_letter(record, exc))

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], exc: MalformedEvent
    ) -> Awaitable[object]:
        m.DEAD_LETTERED.labels(exc.kind).inc()
        log.warning(
            "dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            kind=exc.kind,
            reason=str(exc)[:300],
        )
        return await send_dead_letter(
            self.producer, self.topic_dead_letter, record, f"{exc.kind}: {exc}", SERVICE
        )

    async def _send_large(
        self,
        record: ConsumerRecord[bytes, bytes],
        topic: str,
        config: IntegrationConfig,
        body: bytes,
    ) -> None:
        """An envelope over the broker's record limit goes compressed (bills compress
        about tenfold); one that still does not fit is dead-lettered with the reason, so
        no bill can stop the router."""
        producer = await self._compressing_producer()
        try:
            await (await producer.send(topic, body, key=dispatch_key(config).encode()))
        except MessageSizeTooLargeError:
            reason = (
                f"the envelope for configuration {config.id!r} is {len(body):,} bytes and "
                f"over the broker's record limit even compressed; split the bill or raise "
                f"max.message.bytes on {topic}, then replay this offset"
            )
            await (await self._dead_letter(record, MalformedEvent("too_large", reason)))

    async def _compressing_producer(self) -> AIOKafkaProducer:
        async with self._large_lock:
            if self._large_producer is None:
                producer = make_producer(
                    self.settings.kafka_bootstrap_servers,
                    compression_type=DISPATCH_COMPRESSION,
                    max_request_size=LARGE_REQUEST_MAX_BYTES,
                    linger_ms=0,
                )
                await producer.start()
                self._large_producer = producer
            return self._large_producer

    def _parse(self, record: ConsumerRecord[bytes, bytes]) -> Inbound:
        value = record.value
        if value is None:
            raise MalformedEvent("empty", "the event has no value")
        if record.topic == self.topic_replay:
            req = _validate(ReplayRequest.model_validate_json, value)
            only = frozenset(req.config_ids) if req.config_ids else None
            return Inbound.from_model(
                req.bill,
                Trigger.REPLAY,
                req.approved_source,
                ModelPreparedBills(req.bill, None),
                req.replay_id,
                only,
            )
        approved = record.topic == self.topic_approved
        trigger = Trigger.APPROVED if approved else Trigger.GENERATED
        fast = decode_bill(value)
        if fast is None:  # the contract decides (and says why it refuses)
            bill = _validate(Bill.model_validate_json, value)
            return Inbound.from_model(bill, trigger, approved, ModelPreparedBills(bill, value))
        embedded = None
        embedded_json = fast.bill.embedded_account()
        if embedded_json is not None:
            embedded = _validate(Account.model_validate_json, embedded_json, "account")
        return Inbound(
            fast.bill.id,
            fast.bill.version,
            fast.bill.account_id,
            embedded,
            trigger,
            approved,
            RawPreparedBills(value, fast),
        )

    def _view(self, account: Account) -> tuple[dict[str, Any], bytes]:
        """The filter's view and the JSON of an account, cached while the accounts table
        holds the same record (an embedded account is computed for its bill alone)."""
        cached = self._views.get(account.id)
        if cached is not None and cached[0] is account:
            return cached[1], cached[2]
        view, raw = account_view(account), account.to_bytes()
        if self.accounts.get(account.id) is account:
            self._views[account.id] = (account, view, raw)
        return view, raw

    def _account_for(self, inbound: Inbound) -> Account:
        embedded = inbound.embedded_account
        if embedded is not None:
            if embedded.id != inbound.account_id:
                # The sink would look the customer up under one id and bill the other.
                raise MalformedEvent(
                    "schema",
                    f"account.id: the embedded account {embedded.id!r} is not the bill's "
                    f"accountId {inbound.account_id!r}",
                )
            return embedded
        account = self.accounts.get(inbound.account_id)
        if account is None:
            raise MalformedEvent(
                "unknown_entity",
                f"account {inbound.account_id!r} is neither embedded in the bill nor in the "
                f"accounts topic; publish the account, then replay this offset",
            )
        return account


@dataclass(frozen=True, slots=True)
class _Target:
    """A configuration version's dispatch topic, record key and dispatch counter."""

    version: int
    topic: str
    key: bytes
    dispatched: Counter


@dataclass(slots=True)
class Inbound:
    """A validated input, with what routing and envelope building read from it."""

    bill_id: str
    version: int
    account_id: str
    embedded_account: Account | None
    trigger: Trigger
    approved: bool
    bills: PreparedBills
    replay_id: str | None = None
    only: frozenset[str] | None = None

    @classmethod
    def from_model(
        cls,
        bill: Bill,
        trigger: Trigger,
        approved: bool,
        bills: PreparedBills,
        replay_id: str | None = None,
        only: frozenset[str] | None = None,
    ) -> Inbound:
        return cls(
            bill.id,
            bill.version,
            bill.account_id,
            bill.account,
            trigger,
            approved,
            bills,
            replay_id,
            only,
        )


T = TypeVar("T")


def _validate(decode: Callable[[bytes], T], raw: bytes, where: str = "") -> T:
    try:
        return decode(raw)
    except pydantic.ValidationError as exc:
        kind = "not_json" if _is_json_error(exc) else "schema"
        raise MalformedEvent(kind, _short_errors(exc, where)) from exc


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: RouterService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._service.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._service.partitions_assigned(assigned)


def _is_json_error(exc: pydantic.ValidationError) -> bool:
    return any(err.get("type") == "json_invalid" for err in exc.errors())


def _short_errors(exc: pydantic.ValidationError, where: str = "") -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in (*((where,) if where else ()), *err.get("loc", ())))
        parts.append(f"{loc or '<root>'}: {err.get('msg')}")
    return json.dumps(parts)[:1500]
