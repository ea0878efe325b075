"""What the endpoint must remember across restarts: the event ids it has processed (a
compacted topic). It reads the invoice map (to check who owns an invoice) but never writes
it: only sinks do (shared/sinks/invoice_status.py); the status update it publishes
reaches the map there."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from services.webhooks.settings import WebhookSettings
from shared.contracts.base import WireModel
from shared.kafka.table import CompactedTable
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from shared.sinks.invoice_map import InvoiceMapRecord


class ProcessedEvent(WireModel):
    id: str
    type: str
    integration_config_id: str
    processed_at: datetime


class WebhookState:
    """Start it before serving; `stop` closes its consumers. The producer is the caller's."""

    def __init__(
        self, settings: Settings, producer: AIOKafkaProducer, hooks: WebhookSettings | None = None
    ) -> None:
        self.settings = settings
        self.hooks = hooks or WebhookSettings()
        self.producer = producer
        bootstrap = settings.kafka_bootstrap_servers
        self.events_topic = settings.topics.name("webhook_events")
        self.processed = CompactedTable[ProcessedEvent](
            self.events_topic, bootstrap, ProcessedEvent.model_validate_json
        )
        self.invoice_map = CompactedTable[InvoiceMapRecord](
            settings.topics.name("invoice_map"), bootstrap, InvoiceMapRecord.model_validate_json
        )
        self.started = False

    async def start(self) -> None:
        await ensure_topics(self.settings)
        await self.processed.start()
        await self.invoice_map.start()
        self.started = True

    async def stop(self) -> None:
        await self.processed.stop()
        await self.invoice_map.stop()
        self.started = False

    def seen(self, event_id: str) -> bool:
        return event_id in self.processed.data

    async def mark(self, event_id: str, event_type: str, config_id: str) -> None:
        record = ProcessedEvent(
            id=event_id,
            type=event_type,
            integration_config_id=config_id,
            processed_at=datetime.now(UTC),
        )
        await self.producer.send_and_wait(
            self.events_topic, record.to_bytes(), key=event_id.encode()
        )
        self.processed.data[event_id] = record  # visible now, not only once read back
