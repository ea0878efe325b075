"""The Kafka side of a sink: consume a dispatch topic, hand every envelope to a handler,
and commit only finished work.

- Each record becomes one task running `handler(envelope)`. The handler returning (or
  raising anything but cancellation) finishes the record; a cancelled handler leaves it
  unfinished, so the commit never passes it and the partition's next owner delivers it.
- Offsets: one `OffsetTracker` per assigned partition, fresh on every assignment; commits
  go only to partitions this consumer holds.
- Backpressure: fetching pauses while `max_in_flight` records are unfinished.
- Stop and revoke: handlers inside a delivery (`delivering()`) get a bounded time
  (`stop_grace` / `revoke_grace`); every other handler (queued for a slot, or sleeping
  before a retry) is cancelled at once; then the finished work is committed.
- Unreadable records go to the dead-letter topic (durably) before they count as finished.

A batch delivery path plugs in beside the single one as another handler: it queues the
envelope into a batch and awaits that envelope's own outcome, so offsets, stop and revoke
work unchanged. The task making the batch call marks the members' tasks with
`delivering(*member_tasks)` so a stop waits for the call instead of abandoning them."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pydantic
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from shared.contracts import DispatchEnvelope
from shared.kafka.client_options import kafka_options
from shared.kafka.deadletter import send_dead_letter
from shared.kafka.lag import LagWatcher
from shared.logging import get_logger
from shared.settings import Settings
from shared.sinks import metrics as m
from shared.sinks.offsets import OffsetTracker
from shared.sinks.options import SinkOptions

log = get_logger("sink.consumer")

Handler = Callable[[DispatchEnvelope], Awaitable[None]]
# The dispatch partition of the record a handler task is working on (scheduled delivery
# records it: the partition's owner in the group delivers what was collected).
DISPATCH_PARTITION: contextvars.ContextVar[int] = contextvars.ContextVar(
    "dispatch_partition", default=0
)


class DispatchConsumer:
    def __init__(
        self,
        settings: Settings,
        family: str,
        options: SinkOptions,
        producer: AIOKafkaProducer,
        handler: Handler,
    ) -> None:
        self.settings = settings
        self.family = family
        self.options = options
        self.producer = producer
        self.handler = handler
        self.topic = settings.topics.dispatch(family)
        group = f"{settings.consumer_group_prefix}-{family}-sink"
        self.consumer = AIOKafkaConsumer(
            **kafka_options(settings.kafka_bootstrap_servers),
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.lag = LagWatcher(self.consumer, group)
        # Per assigned partition: its offsets and the tasks handling its records.
        self._trackers: dict[TopicPartition, OffsetTracker] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        # Tasks inside a delivery (holding slots, calling the provider, recording the
        # result): a stop or a revoke gives them a bounded time; every other task (queued,
        # or sleeping before a retry) is abandoned at once and its offset left uncommitted.
        self._busy: set[asyncio.Task[Any]] = set()
        self._busy_changed = asyncio.Event()
        self.in_flight = 0
        self.paused = False
        self._running = False

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        self.lag.start()

    async def stop(self) -> None:
        """Finish what is being delivered (at most `stop_grace` seconds), abandon the rest
        uncommitted (the next owner of the partition delivers it), commit, leave."""
        self._running = False
        await self.release(list(self._trackers), self.options.stop_grace)
        await self.lag.stop()
        await self.consumer.stop()

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
                    self.in_flight += 1
                    task = asyncio.create_task(self._handle(tracker, record))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            m.IN_FLIGHT.labels(self.family).set(self.in_flight)
            if loop.time() - last_commit >= self.options.commit_interval:
                await self.commit()
                last_commit = loop.time()

    def _apply_backpressure(self) -> None:
        full = self.in_flight >= self.options.max_in_flight
        if full and not self.paused:
            self.consumer.pause(*self.consumer.assignment())
        elif not full and self.paused:
            self.consumer.resume(*self.consumer.assignment())
        self.paused = full
        m.PAUSED.labels(self.family).set(1 if full else 0)

    def owns(self, partition: int) -> bool:
        """This consumer holds that partition of the dispatch topic now."""
        return any(tp.partition == partition for tp in self._trackers)

    async def _handle(self, tracker: OffsetTracker, record: ConsumerRecord[bytes, bytes]) -> None:
        DISPATCH_PARTITION.set(record.partition)  # this record's own task
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
            await self.handler(envelope)
            finished = True
        finally:
            # Cancelled (stop, revoke): not finished, so the commit never passes it.
            if finished:
                tracker.finish(record.offset)
            self.in_flight -= 1

    # ---- commits, rebalance, stop ---------------------------------------------------

    async def commit(self, partitions: list[TopicPartition] | None = None) -> None:
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

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Fresh trackers: the group's committed offset is where fetching resumes."""
        for tp in assigned:
            self._trackers[tp] = OffsetTracker()
            self._committed.pop(tp, None)
            self._tasks.setdefault(tp, set())
        self.paused = False  # new partitions start resumed; the loop pauses them if full
        log.info("partitions_assigned", partitions=sorted(str(tp) for tp in assigned))

    async def release(self, partitions: list[TopicPartition], grace: float) -> None:
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
        await self.commit(partitions)
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
    def delivering(self, *tasks: asyncio.Task[Any]) -> Iterator[None]:
        """Mark tasks (default: the current one) as delivering: a stop or a revoke waits
        for them (bounded) instead of cancelling them."""
        current = asyncio.current_task()
        marked = list(tasks) or ([current] if current is not None else [])
        self._busy.update(marked)
        try:
            yield
        finally:
            self._busy.difference_update(marked)
            self._busy_changed.set()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: DispatchConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.consumer.release(list(revoked), self.consumer.options.revoke_grace)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.consumer.on_assigned(assigned)
