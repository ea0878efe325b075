"""The router's Kafka edge: consume bills, route with the pure core, produce envelopes,
commit an input offset only after every dispatch it caused is acknowledged."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any

import pydantic
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from services.router import metrics as m
from services.router.envelopes import EnvelopeBuilder
from shared.contracts import (
    Account,
    Bill,
    ExternalMapping,
    ReplayRequest,
    Trigger,
    parse_config,
)
from shared.filters import FilterSyntaxError
from shared.kafka.client_options import kafka_options
from shared.kafka.deadletter import send_dead_letter
from shared.kafka.lag import LagWatcher
from shared.kafka.producer import make_producer
from shared.kafka.table import CompactedTable
from shared.kafka.topics import ensure_topics
from shared.logging import get_logger
from shared.observability import ObservabilityServer
from shared.routing import CompiledRoute, RouteIndex, compile_route
from shared.routing.rules import account_view
from shared.settings import Settings

log = get_logger("router")

SERVICE = "router"


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
        self.producer = make_producer(bootstrap)
        self.consumer = AIOKafkaConsumer(
            self.topic_generated,
            self.topic_approved,
            self.topic_replay,
            **kafka_options(bootstrap),
            group_id=f"{settings.consumer_group_prefix}-router",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self.lag = LagWatcher(self.consumer, f"{settings.consumer_group_prefix}-router")
        self.http = ObservabilityServer(SERVICE, self._health)
        self._builder = EnvelopeBuilder({})
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
        outstanding: deque[asyncio.Task[None]] = deque()
        try:
            while self._running:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=2000)
                if batches:
                    previous = outstanding[-1] if outstanding else None
                    pending, offsets, stamps = await self.route_batch(batches)
                    outstanding.append(
                        asyncio.create_task(
                            self._ack_then_commit(pending, offsets, stamps, previous)
                        )
                    )
                while outstanding and (outstanding[0].done() or len(outstanding) > 3):
                    await outstanding.popleft()
        finally:
            if outstanding:
                await asyncio.gather(*outstanding, return_exceptions=True)

    async def process_batch(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        pending, offsets, stamps = await self.route_batch(batches)
        await self._ack_then_commit(pending, offsets, stamps, None)

    async def route_batch(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> tuple[list[Awaitable[object]], dict[TopicPartition, int], list[float]]:
        pending: list[Awaitable[object]] = []
        stamps: list[float] = []
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batches.items():
            for record in records:
                pending.extend(await self.handle(record))
                stamps.append(record.timestamp / 1000.0)
            offsets[tp] = records[-1].offset + 1
        return pending, offsets, stamps

    async def _ack_then_commit(
        self,
        pending: list[Awaitable[object]],
        offsets: dict[TopicPartition, int],
        stamps: list[float],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if pending:
            await asyncio.gather(*pending)  # every dispatch acknowledged by the broker
        if previous is not None:
            await previous  # commits stay in batch order
        now = time.time()
        for ts in stamps:
            m.ROUTING_LATENCY.observe(max(0.0, now - ts))
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError:
            # Partitions moved in a rebalance: the new owner re-routes them and the sinks
            # recognise the repeated dispatch ids.
            log.warning("commit_failed_after_rebalance", partitions=len(offsets))

    async def handle(self, record: ConsumerRecord[bytes, bytes]) -> list[Awaitable[object]]:
        m.EVENTS_CONSUMED.labels(record.topic).inc()
        source = f"{record.topic}/{record.partition}/{record.offset}"
        try:
            bill, trigger, approved, replay_id, only = self._parse(record)
            account = self._account_for(bill)
        except MalformedEvent as exc:
            m.DEAD_LETTERED.labels(exc.kind).inc()
            log.warning(
                "dead_lettered",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                kind=exc.kind,
                reason=str(exc)[:300],
            )
            fut = await send_dead_letter(
                self.producer, self.topic_dead_letter, record, f"{exc.kind}: {exc}", SERVICE
            )
            return [fut]
        view, account_json = self._view(account)
        result = self.index.route(bill.account_id, view, trigger, approved, only)
        for reason, count in result.filtered.items():
            m.FILTERED.labels(reason.value).inc(count)
        self.routed_bills += 1
        if not result.matches:
            m.UNMATCHED.inc()
            return []
        configs = [match.route.config for match in result.matches]
        futures: list[Awaitable[object]] = []
        raw_bill = record.value if record.topic != self.topic_replay else None
        for config, did, body in self._builder.build(
            bill, account, configs, trigger, source, replay_id, raw_bill, account_json
        ):
            topic = self.settings.topics.dispatch(config.destination.family)
            futures.append(await self.producer.send(topic, body, key=config.id.encode()))
            m.DISPATCHES.labels(config.destination.value).inc()
            log.debug(
                "dispatched",
                bill_id=bill.id,
                integration_config_id=config.id,
                dispatch_id=did,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        return futures

    def _parse(
        self, record: ConsumerRecord[bytes, bytes]
    ) -> tuple[Bill, Trigger, bool, str | None, frozenset[str] | None]:
        if record.value is None:
            raise MalformedEvent("empty", "the event has no value")
        try:
            if record.topic == self.topic_replay:
                req = ReplayRequest.model_validate_json(record.value)
                only = frozenset(req.config_ids) if req.config_ids else None
                return req.bill, Trigger.REPLAY, req.approved_source, req.replay_id, only
            bill = Bill.model_validate_json(record.value)
        except pydantic.ValidationError as exc:
            kind = "not_json" if _is_json_error(exc) else "schema"
            raise MalformedEvent(kind, _short_errors(exc)) from exc
        approved = record.topic == self.topic_approved
        return bill, Trigger.APPROVED if approved else Trigger.GENERATED, approved, None, None

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

    def _account_for(self, bill: Bill) -> Account:
        if bill.account is not None:
            return bill.account
        account = self.accounts.get(bill.account_id)
        if account is None:
            raise MalformedEvent(
                "unknown_entity",
                f"account {bill.account_id!r} is neither embedded in the bill nor in the "
                f"accounts topic; publish the account, then replay this offset",
            )
        return account


def _is_json_error(exc: pydantic.ValidationError) -> bool:
    return any(err.get("type") == "json_invalid" for err in exc.errors())


def _short_errors(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc or '<root>'}: {err.get('msg')}")
    return json.dumps(parts)[:1500]
