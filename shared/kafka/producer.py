"""One producer setup for every service: acks from all replicas, idempotent, batched."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from shared.kafka.client_options import kafka_options


def make_producer(bootstrap_servers: str, **overrides: object) -> AIOKafkaProducer:
    options: dict[str, object] = {
        **kafka_options(bootstrap_servers),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 512 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        "compression_type": None,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


class BatchSender:
    """Collects records into one batch per topic partition and submits each batch once:
    far less work per record than `send()` when a consumer batch fans out into hundreds
    of records. Partitions are chosen as `send()` chooses them (murmur2 of the key), so
    records with one key stay on one partition, in the order added.

    A round: `open_round` looks the topics' partitions up, `add` (synchronous, no
    coroutine per record) collects, `submit_full` sends the batches that filled up
    (call it when `has_full`), `flush` sends the rest and returns every future."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._key_partition: dict[tuple[str, bytes], int] = {}
        self._open: dict[tuple[str, int], BatchBuilder] = {}
        self._full: list[tuple[str, int, BatchBuilder]] = []  # filled up, not yet sent
        self._futures: list[asyncio.Future[object]] = []

    @property
    def has_full(self) -> bool:
        return bool(self._full)

    async def open_round(self, topics: Iterable[str]) -> None:
        """Looks up the partitions of the topics `add` may be given this round (the
        partition count may change between rounds)."""
        for topic in topics:
            self._partitions[topic] = sorted(await self._producer.partitions_for(topic))

    def _partition(self, topic: str, key: bytes) -> int:
        cached = self._key_partition.get((topic, key))
        if cached is not None:
            return cached
        partitions = self._partitions[topic]  # KeyError: the topic was not opened
        partition: int = self._partitioner(key, partitions, partitions)
        self._key_partition[(topic, key)] = partition
        return partition

    def add(self, topic: str, key: bytes, value: bytes) -> None:
        partition = self._partition(topic, key)
        batch = self._open.get((topic, partition))
        if batch is None:
            batch = self._open[(topic, partition)] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is not None:
            return
        self._full.append((topic, partition, batch))  # full: queue it, start the next
        batch = self._open[(topic, partition)] = self._producer.create_batch()
        # An empty batch takes any record (the producer's request limit applies at send).
        taken = batch.append(key=key, value=value, timestamp=None)
        assert taken is not None

    async def submit_full(self) -> None:
        """Send the batches that filled up, in the order they filled."""
        full, self._full = self._full, []
        for topic, partition, batch in full:
            await self._submit(topic, partition, batch)

    async def _submit(self, topic: str, partition: int, batch: BatchBuilder) -> None:
        batch.close()
        self._futures.append(await self._producer.send_batch(batch, topic, partition=partition))

    async def flush(self) -> list[asyncio.Future[object]]:
        """Submit every batch; the futures resolve when the broker acknowledges."""
        await self.submit_full()
        for (topic, partition), batch in self._open.items():
            await self._submit(topic, partition, batch)
        futures, self._futures = self._futures, []
        self._open.clear()
        self._partitions.clear()
        self._key_partition.clear()
        return futures
