"""A local, always-current view of a compacted topic (Kafka Connect's config-topic pattern).

It reads every partition from the beginning without a consumer group, applies each record
(a null value deletes the key), reports `ready` once it has caught up with the end offsets
seen at start, and keeps following so changes take effect within seconds.

The one table class for every compacted topic. A writer of the topic uses `write`: it
publishes, waits for the broker, and applies the value locally at once. The follower
reads the same record later; a per-key offset keeps it from putting back an older value
over a newer one already applied (otherwise a read-modify-write in that window would
build on stale data and lose an update).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared.kafka.client_options import kafka_options
from shared.kafka.ranges import topic_partitions
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger

log = get_logger(__name__)
V = TypeVar("V")

Decoder = Callable[[bytes], V]


class CompactedTable(Generic[V]):
    def __init__(
        self,
        topic: str,
        bootstrap_servers: str,
        decode: Decoder[V],
        on_change: Callable[[str, V | None], None] | None = None,
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap_servers
        self._decode = decode
        self._on_change = on_change
        self.data: dict[str, V] = {}
        self._offsets: dict[tuple[str, int], int] = {}  # (key, partition) -> last applied
        self.rejected = 0
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    def get(self, key: str) -> V | None:
        return self.data.get(key)

    def values(self) -> list[V]:
        return list(self.data.values())

    async def start(self, wait_ready: bool = True, timeout: float = 60.0) -> None:
        self._consumer = AIOKafkaConsumer(
            **kafka_options(self._bootstrap),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        tps = await topic_partitions(self._consumer, self.topic, attempts=50)
        if not tps:
            raise RuntimeError(f"topic {self.topic!r} does not exist; run `billsync topics create`")
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        end = await self._consumer.end_offsets(tps)
        self._task = asyncio.create_task(self._follow(dict(end)), name=f"table:{self.topic}")
        if wait_ready:
            await asyncio.wait_for(self.ready.wait(), timeout)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._consumer is not None:
            await self._consumer.stop()

    def put(self, key: str, value: V | None, offset: int, partition: int = 0) -> bool:
        """Apply a value written at `offset` (None deletes), unless a newer one is already
        applied. Returns whether it was applied."""
        if self._offsets.get((key, partition), -1) >= offset:
            return False
        self._offsets[(key, partition)] = offset
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value
        if self._on_change:
            self._on_change(key, value)
        return True

    async def write(
        self, producer: AIOKafkaProducer, key: str, value: V | None, payload: bytes | None
    ) -> None:
        """Publish (None = tombstone), wait for the broker, then apply locally."""
        metadata = await producer.send_and_wait(self.topic, payload, key=key.encode())
        self.put(key, value, metadata.offset, metadata.partition)

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is None:
            self.rejected += 1
            return
        key = record.key.decode("utf-8", "replace")
        if self._offsets.get((key, record.partition), -1) >= record.offset:
            return  # already applied by this process's own write
        if record.value is None:
            self.put(key, None, record.offset, record.partition)
            return
        try:
            value = self._decode(record.value)
        except ValueError as exc:  # pydantic.ValidationError and JSON errors are ValueErrors
            self.rejected += 1
            log.warning(
                "table_record_rejected",
                topic=self.topic,
                key=key,
                offset=record.offset,
                error=str(exc)[:500],
            )
            return
        self.put(key, value, record.offset, record.partition)

    async def _follow(self, end_offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        pending = {tp: off for tp, off in end_offsets.items() if off > 0}
        if not pending:
            self.ready.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    self._apply(record)
                if tp in pending and records and records[-1].offset + 1 >= pending[tp]:
                    del pending[tp]
            if not self.ready.is_set() and not pending:
                log.info("table_ready", topic=self.topic, keys=len(self.data))
                self.ready.set()


async def read_snapshot(topic: str, bootstrap_servers: str, decode: Decoder[V]) -> dict[str, V]:
    """The current state of a compacted topic, read once up to its end."""
    table = CompactedTable[V](topic, bootstrap_servers, decode)
    await table.start()
    await table.stop()
    return dict(table.data)
