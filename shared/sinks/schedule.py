"""Scheduled delivery: a configuration collects its bills and delivers them at an interval
(hourly by default; Salesforce's SCHEDULE trigger), instead of one by one as they come.

State lives in Kafka like the rest: every collected envelope is a record on the compacted
`sink-schedule` topic, keyed by destination family, configuration and bill, so

- what is collected survives a restart (the topic is read back at start);
- the latest version of a bill replaces earlier ones (same key; an older version arriving
  late does not replace a newer one);
- it goes out once: after a delivery finishes its record is deleted (a tombstone), and a
  crash between the two redelivers an envelope the invoice map already knows as completed
  (no second provider write).

Collection is due at the interval's boundaries (UTC epoch multiples of the interval): a
record collected at t goes out at the first boundary after t. Boundaries need no stored
clock and agree across instances and restarts. `PendingSchedule` is the pure part."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts import DispatchEnvelope, IntegrationConfig
from shared.contracts.base import WireModel
from shared.kafka.table import CompactedTable
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger

log = get_logger("sink.schedule")


class ScheduledEnvelope(WireModel):
    family: str
    integration_config_id: str
    bill_id: str
    bill_version: int
    collected_at: datetime
    partition: int = 0  # of the dispatch topic: its owner in the group flushes the record
    not_before: datetime | None = None  # parked until then (a spent daily quota)
    envelope: DispatchEnvelope

    @property
    def key(self) -> str:
        return schedule_key(self.family, self.integration_config_id, self.bill_id)


def schedule_key(family: str, config_id: str, bill_id: str) -> str:
    return f"{family}\x1f{config_id}\x1f{bill_id}"


def due_at(collected_at: datetime, interval_seconds: float) -> datetime:
    """The first interval boundary strictly after `collected_at`."""
    ts = collected_at.timestamp()
    boundary = (ts // interval_seconds + 1) * interval_seconds
    return datetime.fromtimestamp(boundary, UTC)


@dataclass(frozen=True)
class Collected:
    record: ScheduledEnvelope
    replaced: ScheduledEnvelope | None  # an earlier version it replaced


class PendingSchedule:
    """What is waiting, by key. Pure: times are passed in."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.records: dict[str, ScheduledEnvelope] = {}

    def __len__(self) -> int:
        return len(self.records)

    def apply(self, key: str, record: ScheduledEnvelope | None) -> None:
        """A record read back from the topic (None: deleted)."""
        if record is None:
            self.records.pop(key, None)
        elif record.family == self.family:
            self.records[key] = record

    def collect(
        self,
        envelope: DispatchEnvelope,
        now: datetime,
        partition: int = 0,
        not_before: datetime | None = None,
    ) -> Collected | None:
        """The record to write for `envelope`, or None when a newer version of the bill is
        already waiting (the late older one is dropped)."""
        key = schedule_key(self.family, envelope.integration_config_id, envelope.bill.id)
        current = self.records.get(key)
        if current is not None and current.bill_version > envelope.bill.version:
            return None
        record = ScheduledEnvelope(
            family=self.family,
            integration_config_id=envelope.integration_config_id,
            bill_id=envelope.bill.id,
            bill_version=envelope.bill.version,
            # A replacement keeps its place in the current round.
            collected_at=current.collected_at if current else now,
            partition=partition,
            not_before=not_before,
            envelope=envelope,
        )
        return Collected(record, current)

    def due(
        self,
        now: datetime,
        interval_of: Callable[[ScheduledEnvelope], float],
        owned: Callable[[ScheduledEnvelope], bool] = lambda _: True,
    ) -> list[ScheduledEnvelope]:
        """Records whose boundary has passed, oldest first (only those this instance owns)."""
        ready = [
            r
            for r in self.records.values()
            if owned(r)
            and (
                r.not_before <= now
                if r.not_before is not None
                else due_at(r.collected_at, interval_of(r)) <= now
            )
        ]
        return sorted(ready, key=lambda r: (r.collected_at, r.key))

    def is_current(self, record: ScheduledEnvelope) -> bool:
        """Still the waiting version (not replaced by a newer one meanwhile)."""
        return self.records.get(record.key) == record


class ScheduleStore:
    """The pending schedule of one sink family on the compacted topic."""

    def __init__(self, family: str, topic: str, bootstrap_servers: str) -> None:
        self.family = family
        self.topic = topic
        self.pending = PendingSchedule(family)
        self.table = CompactedTable[ScheduledEnvelope](
            topic, bootstrap_servers, ScheduledEnvelope.model_validate_json, self.pending.apply
        )

    async def start(self) -> None:
        await self.table.start()

    async def stop(self) -> None:
        await self.table.stop()

    async def collect(
        self,
        producer: AIOKafkaProducer,
        envelope: DispatchEnvelope,
        now: datetime,
        partition: int = 0,
        not_before: datetime | None = None,
    ) -> ScheduledEnvelope | None:
        """Write the envelope to the schedule; returns once the broker has it."""
        collected = self.pending.collect(envelope, now, partition, not_before)
        if collected is None:
            return None
        record = collected.record
        await self.table.write(producer, record.key, record, record.to_bytes())
        return record

    async def done(self, producer: AIOKafkaProducer, records: Iterable[ScheduledEnvelope]) -> None:
        """Delete delivered records (unless a newer version replaced them meanwhile)."""
        for record in records:
            if self.pending.is_current(record):
                await self.table.write(producer, record.key, None, None)


DEFAULT_INTERVAL = 3600.0  # hourly


class ScheduleSettings(BaseSettings):
    """`BILLSYNC_SINK_SCHEDULE_INTERVAL` overrides every scheduled configuration's interval
    (seconds; tests and demos); `..._SCHEDULE_TICK` is how often due records are looked for."""

    model_config = SettingsConfigDict(env_prefix="BILLSYNC_SINK_", extra="ignore")

    schedule_interval: float | None = None
    schedule_tick: float = 1.0


Deliver = Callable[[ScheduledEnvelope], Awaitable[None]]


class ScheduledDelivery:
    """The runner's side: `wants(config)` says whether a configuration is scheduled;
    `collect(envelope, partition)` stores one; a background loop delivers what is due on
    partitions this instance owns (`owned(partition)`) through `deliver`, then deletes it."""

    def __init__(
        self,
        store: ScheduleStore,
        producer: AIOKafkaProducer,
        interval_of: Callable[[IntegrationConfig], float | None],
        deliver: Deliver,
        owned: Callable[[int], bool],
        settings: ScheduleSettings | None = None,
    ) -> None:
        self.store = store
        self._producer = producer
        self._interval_of = interval_of
        self._deliver = deliver
        self._owned = owned
        self.settings = settings or ScheduleSettings()
        self._task: asyncio.Task[None] | None = None
        self.flushed = 0

    def interval(self, config: IntegrationConfig) -> float | None:
        declared = self._interval_of(config)
        if declared is None:
            return None
        return self.settings.schedule_interval or declared

    def wants(self, config: IntegrationConfig) -> bool:
        return self.interval(config) is not None

    async def start(self) -> None:
        await self.store.start()
        self._task = asyncio.create_task(self._loop(), name=f"schedule:{self.store.family}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.store.stop()

    async def collect(
        self, envelope: DispatchEnvelope, partition: int, not_before: datetime | None = None
    ) -> ScheduledEnvelope | None:
        """Keep `envelope` for the next boundary (or until `not_before`: parked)."""
        return await self.store.collect(
            self._producer, envelope, datetime.now(UTC), partition, not_before
        )

    async def flush_due(self) -> int:
        pending = self.store.pending
        due = pending.due(
            datetime.now(UTC),
            lambda r: self.interval(r.envelope.integration_config) or DEFAULT_INTERVAL,
            lambda r: self._owned(r.partition),
        )
        if not due:
            return 0
        await asyncio.gather(*(self._deliver(r) for r in due))
        await self.store.done(self._producer, due)
        self.flushed += len(due)
        log.info("schedule_flushed", destination=self.store.family, bills=len(due))
        return len(due)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.schedule_tick)  # a clock, not synchronisation
            await self.flush_due()
