"""Consumer lag measured by each consuming service from its own assignment: for every
partition it owns, the partition's end offset minus the group's committed offset. No
separate exporter is needed, and the figure is the one that matters for at-least-once
delivery (records not yet committed are records that would be re-read after a restart).

Every service owns one `LagWatcher` per consumer group: create it with the consumer,
`start()` it after the consumer has started, `await stop()` before the consumer stops."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from shared.logging import get_logger

log = get_logger(__name__)

LAG = Gauge(
    "billsync_kafka_consumer_lag",
    "Records in an assigned partition after the group's committed offset",
    ["group", "topic", "partition"],
)
COMMITTED = Gauge(
    "billsync_kafka_consumer_committed_offset",
    "The group's committed offset of an assigned partition",
    ["group", "topic", "partition"],
)
UPDATED = Gauge(
    "billsync_kafka_consumer_lag_updated_timestamp_seconds",
    "When this service last measured its consumer lag (Unix time)",
    ["group"],
)


class LagWatcher:
    """Measures the lag of one consumer's assignment every `interval` seconds. Partitions
    that move to another instance in a rebalance stop being reported here (their new
    owner reports them), so a partition is never reported twice for long."""

    def __init__(self, consumer: AIOKafkaConsumer, group: str, interval: float = 5.0) -> None:
        self._consumer = consumer
        self.group = group
        self.interval = interval
        self._reported: set[TopicPartition] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"lag-{self.group}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._forget(set(self._reported))

    async def _loop(self) -> None:
        while True:
            try:
                await self.measure()
            except (KafkaError, OSError, TimeoutError) as exc:  # broker unreachable: next round
                log.warning("consumer_lag_unavailable", group=self.group, error=str(exc)[:300])
            await asyncio.sleep(self.interval)

    async def measure(self) -> dict[TopicPartition, int]:
        """One measurement: sets the gauges and returns the lag of every owned partition."""
        assigned = set(self._consumer.assignment())
        self._forget(self._reported - assigned)
        if not assigned:  # an idle instance (more instances than partitions) measures nothing
            UPDATED.labels(self.group).set_to_current_time()
            return {}
        ordered = sorted(assigned)
        ends = await self._consumer.end_offsets(ordered)
        starts: dict[TopicPartition, int] | None = None
        lags: dict[TopicPartition, int] = {}
        for tp in ordered:
            committed = await self._consumer.committed(tp)
            if committed is None:  # nothing committed yet: everything retained is pending
                if starts is None:
                    starts = await self._consumer.beginning_offsets(ordered)
                committed = starts[tp]
            lag = max(0, ends[tp] - committed)
            lags[tp] = lag
            labels = (self.group, tp.topic, str(tp.partition))
            LAG.labels(*labels).set(lag)
            COMMITTED.labels(*labels).set(committed)
        self._reported = assigned
        UPDATED.labels(self.group).set_to_current_time()
        return lags

    def _forget(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            labels = (self.group, tp.topic, str(tp.partition))
            with contextlib.suppress(KeyError):
                LAG.remove(*labels)
            with contextlib.suppress(KeyError):
                COMMITTED.remove(*labels)
        self._reported -= partitions
