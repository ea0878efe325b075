"""Run history ingestion: `integration-results` -> the store, in its own consumer group.

At least once: a batch is written in one transaction, then its offsets are committed.
A redelivered record collapses into the same row (upserts keyed by run/event id).
Malformed records go to the dead-letter topic and are skipped."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pydantic
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from prometheus_client import Counter

from shared.contracts import ResultRecord, ResultRecordAdapter
from shared.kafka.client_options import kafka_options
from shared.kafka.deadletter import send_dead_letter
from shared.kafka.lag import LagWatcher
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger
from shared.settings import Settings
from shared.store import Store

log = get_logger(__name__)
INGESTED = Counter(
    "billsync_control_ingested_records_total", "Results stored by the control plane", ["kind"]
)
REJECTED = Counter(
    "billsync_control_rejected_records_total", "Malformed results sent to the dead-letter topic"
)
SERVICE = "control"


class ResultsIngester:
    def __init__(
        self, settings: Settings, store: Store, producer: AIOKafkaProducer, group_suffix: str
    ) -> None:
        self._settings = settings
        self._store = store
        self._producer = producer
        self.topic = settings.topics.name("integration_results")
        self.group_id = f"{settings.consumer_group_prefix}-{group_suffix}"
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._lag: LagWatcher | None = None
        self.records_seen = 0
        self.last_batch_at: float | None = None
        self.failing_since: float | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            self.topic,
            **kafka_options(self._settings.kafka_bootstrap_servers),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=600_000,
        )
        await self._consumer.start()
        self._lag = LagWatcher(self._consumer, self.group_id)
        self._lag.start()
        self._task = asyncio.create_task(self._run(), name="control-ingest")
        self._task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self._lag is not None:
            await self._lag.stop()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def health(self) -> dict[str, Any]:
        return {
            "ingesting": self.alive,
            "recordsSeen": self.records_seen,
            "storeFailing": self.failing_since is not None,
        }

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=500)
            records = [r for rs in batches.values() for r in rs]
            if not records:
                continue
            parsed = await self._parse(records)
            await self._store_until_done(parsed)
            await self._consumer.commit()
            self.records_seen += len(records)
            self.last_batch_at = time.monotonic()

    async def _parse(self, records: list[ConsumerRecord[bytes, bytes]]) -> list[ResultRecord]:
        parsed: list[ResultRecord] = []
        for record in records:
            try:
                parsed.append(ResultRecordAdapter.validate_json(record.value or b""))
            except pydantic.ValidationError as exc:
                REJECTED.inc()
                log.warning(
                    "result_rejected",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    error=str(exc)[:500],
                )
                future = await send_dead_letter(
                    self._producer,
                    self._settings.topics.name("dead_letter"),
                    record,
                    f"not a result record: {exc}"[:2000],
                    SERVICE,
                )
                await future  # durable before its offset is committed
        return parsed

    async def _store_until_done(self, parsed: list[ResultRecord]) -> None:
        """Retry the same batch until the database takes it: offsets must not move past
        results that are not stored."""
        delay = 0.5
        while True:
            try:
                counts = await self._store.ingest(parsed)
            except Exception:
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                log.exception("results_store_failed", retry_in=delay, records=len(parsed))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.failing_since = None
            INGESTED.labels("run").inc(counts.runs)
            INGESTED.labels("event").inc(counts.events)
            INGESTED.labels("externalStatus").inc(counts.statuses)
            return


def _report_crash(task: asyncio.Task[None]) -> None:
    # A dead ingester turns /health to 503; say why in the log too.
    if not task.cancelled() and task.exception() is not None:
        log.error("ingest_stopped", error=repr(task.exception()))
