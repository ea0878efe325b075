"""SinkRunner: a sink service's parts wired together.

- the Kafka side, `DispatchConsumer` (shared.sinks.consumer): consume the dispatch topic,
  pause/resume, offsets, commits, rebalance, stop, dead letters;
- the delivery policy, `DeliveryPolicy` (shared.sinks.policy): de-duplication, stale
  versions, disabled configurations, PENDING recovery, retries, run records;
- `KafkaPolicyState`: what the policy reads and writes, on the compacted tables
  (configurations, external mappings, invoice map, credentials) and the producer;
- `ScheduledDelivery` (shared.sinks.schedule): configurations the destination schedules,
  and envelopes parked until a daily quota resets, kept on `sink-schedule`;
- `StatusFollower` (shared.sinks.invoice_status): provider statuses published by the
  webhooks service, applied to the invoice map (whose only writer is the sink).

Guarantees (DESIGN.md section 6): at-least-once (a record is committed only once its run
result and invoice-map record are acknowledged, on stop and rebalance too); nothing
doubled (completed dispatch ids are not written again, a PENDING marker makes the next
attempt look up first, same bill + configuration deliveries are serialised); isolation
(retries sleep in their own task, bounded concurrency per configuration and overall,
fetching pauses at max_in_flight)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.contracts import (
    Destination,
    DispatchEnvelope,
    ExternalMapping,
    ExternalSystem,
    IntegrationConfig,
    IntegrationConfigAdapter,
    IntegrationEvent,
    IntegrationRun,
)
from shared.credentials import Credential, CredentialCipher
from shared.credentials.store import CredentialStore
from shared.kafka.producer import make_producer
from shared.kafka.table import CompactedTable
from shared.kafka.topics import ensure_topics
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger
from shared.settings import Settings
from shared.sinks.consumer import DISPATCH_PARTITION, DispatchConsumer
from shared.sinks.customers import MappingIndex
from shared.sinks.destination import SinkDestination
from shared.sinks.invoice_map import InvoiceMapRecord
from shared.sinks.invoice_status import StatusFollower
from shared.sinks.options import SinkOptions
from shared.sinks.policy import DeliveryPolicy, run_id_for
from shared.sinks.schedule import ScheduledDelivery, ScheduledEnvelope, ScheduleStore

__all__ = ["KafkaPolicyState", "SinkRunner", "run_id_for", "running_sink"]

log = get_logger("sink")


class KafkaPolicyState:
    """The policy's state on Kafka: compacted tables read to the end, one producer."""

    def __init__(
        self, settings: Settings, producer: AIOKafkaProducer, cipher: CredentialCipher
    ) -> None:
        topics = settings.topics
        bootstrap = settings.kafka_bootstrap_servers
        self.producer = producer
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
        self.credentials = CredentialStore(topics.name("credentials"), bootstrap, cipher)

    async def start(self) -> None:
        for table in (self.configs, self.mappings, self.invoice_map):
            await table.start()
        await self.credentials.start()

    async def stop(self) -> None:
        await self.credentials.stop()
        for table in (self.configs, self.mappings, self.invoice_map):
            await table.stop()

    @property
    def ready(self) -> bool:
        tables = (self.configs, self.mappings, self.invoice_map, self.credentials.table)
        return all(t.ready.is_set() for t in tables)

    def config(self, config_id: str) -> IntegrationConfig | None:
        return self.configs.get(config_id)

    def mappings_for(self, system: ExternalSystem, account_id: str) -> list[ExternalMapping]:
        return self.mapping_index.for_account(system, account_id)

    def invoice_record(self, key: str) -> InvoiceMapRecord | None:
        return self.invoice_map.get(key)

    def credential(self, credential_id: str) -> Credential | None:
        return self.credentials.get(credential_id)

    async def put_invoice_record(self, record: InvoiceMapRecord) -> None:
        # Visible at once; the follower never puts an older record back over it.
        await self.invoice_map.write(self.producer, record.key, record, record.to_bytes())

    async def send_result(self, record: IntegrationRun | IntegrationEvent) -> Awaitable[Any]:
        # Keyed by configuration: all records of a run share a partition, in order.
        future: Awaitable[Any] = await self.producer.send(
            self.results_topic, record.to_bytes(), key=record.integration_config_id.encode()
        )
        return future


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
        self.producer = make_producer(settings.kafka_bootstrap_servers)
        self.state = KafkaPolicyState(
            settings, self.producer, cipher or CredentialCipher(settings.credentials_key)
        )
        self.consumer = DispatchConsumer(
            settings, self.family, self.options, self.producer, self._process
        )
        self.policy = DeliveryPolicy(
            destination, self.state, self.options, self.consumer.delivering
        )
        # Scheduled delivery, and parking until a daily quota resets, on `sink-schedule`.
        self.schedule = ScheduledDelivery(
            ScheduleStore(
                self.family,
                settings.topics.name("sink_schedule"),
                settings.kafka_bootstrap_servers,
            ),
            self.producer,
            destination.schedule_interval,
            self._deliver_scheduled,
            self.consumer.owns,
        )
        self.policy.scheduled = self.schedule.wants
        self.policy.collect = self._collect
        self.policy.park = self._park
        # The invoice map's only writer applies provider statuses from the webhooks.
        self.statuses = StatusFollower(
            settings.topics.name("integration_results"),
            settings.kafka_bootstrap_servers,
            f"{settings.consumer_group_prefix}-{self.family}-sink-status",
            frozenset(d for d in Destination if d.family == self.family),
            self.policy.apply_status,
        )
        self._started = False

    async def _process(self, envelope: Any) -> None:
        await self.policy.process(envelope)

    async def _collect(self, envelope: DispatchEnvelope) -> None:
        await self.schedule.collect(envelope, DISPATCH_PARTITION.get())

    async def _park(self, envelope: DispatchEnvelope, until: datetime) -> None:
        await self.schedule.collect(envelope, DISPATCH_PARTITION.get(), not_before=until)

    async def _deliver_scheduled(self, record: ScheduledEnvelope) -> None:
        DISPATCH_PARTITION.set(record.partition)  # a re-park keeps the owner's partition
        await self.policy.process(record.envelope, scheduled=True)

    async def start(self) -> None:
        await ensure_topics(self.settings)
        await self.producer.start()
        await self.state.start()
        await self.schedule.start()
        await self.statuses.start()
        await self.consumer.start()
        self._started = True
        log.info("sink_started", destination=self.family, topic=self.consumer.topic)

    async def run(self) -> None:
        await self.consumer.run()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.schedule.stop()
        await self.statuses.stop()
        await self.state.stop()
        await self.policy.close()
        await self.producer.stop()

    def health(self) -> dict[str, Any]:
        return {
            "ok": self._started and self.state.ready and self.schedule.store.table.ready.is_set(),
            "inFlight": self.consumer.in_flight,
            "paused": self.consumer.paused,
            "delivered": self.policy.delivered,
        }


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
