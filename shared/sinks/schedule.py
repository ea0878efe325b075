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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from shared.contracts import DispatchEnvelope
from shared.contracts.base import WireModel
from shared.kafka.table import CompactedTable


class ScheduledEnvelope(WireModel):
    family: str
    integration_config_id: str
    bill_id: str
    bill_version: int
    collected_at: datetime
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

    def collect(self, envelope: DispatchEnvelope, now: datetime) -> Collected | None:
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
            envelope=envelope,
        )
        return Collected(record, current)

    def due(
        self,
        now: datetime,
        interval_of: Callable[[str], float],
        owned: Callable[[ScheduledEnvelope], bool] = lambda _: True,
    ) -> list[ScheduledEnvelope]:
        """Records whose boundary has passed, oldest first (only those this instance owns)."""
        ready = [
            r
            for r in self.records.values()
            if owned(r) and due_at(r.collected_at, interval_of(r.integration_config_id)) <= now
        ]
        return sorted(ready, key=lambda r: (r.collected_at, r.key))

    def is_current(self, record: ScheduledEnvelope) -> bool:
        """Still the waiting version (not replaced by a newer one meanwhile)."""
        now = self.records.get(record.key)
        return now is not None and now.envelope.dispatch_id == record.envelope.dispatch_id


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
        self, producer: AIOKafkaProducer, envelope: DispatchEnvelope, now: datetime
    ) -> ScheduledEnvelope | None:
        """Write the envelope to the schedule; returns once the broker has it."""
        collected = self.pending.collect(envelope, now)
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
