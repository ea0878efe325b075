"""Reading a topic's partitions without a consumer group: `topic_partitions` waits for
a topic's metadata, and `read_ranges` reads fixed offset ranges once. The console's recent
bills, a replay's range and the tests' topic reader go through these (a compacted table,
which keeps following its topic, reads through `shared.kafka.table`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, attempts: int = 30
) -> list[TopicPartition]:
    """The topic's partitions, in order; empty when the started consumer's metadata still
    has none after `attempts` looks (each after a metadata refresh and a tenth of a second:
    a topic created a moment ago takes a while to show)."""
    for attempt in range(attempts):
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        if attempt + 1 < attempts:
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
    return []


async def read_ranges(
    consumer: AIOKafkaConsumer,
    ranges: Mapping[TopicPartition, tuple[int, int]],
    positions: dict[TopicPartition, int] | None = None,
    max_records: int | None = 2000,
) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    """The records in [start, stop) of each partition, a fetched batch at a time, until
    every partition's position reaches its stop. Empty ranges are not read. The consumer
    (started, group-less) is assigned the partitions read; `positions`, when given, holds
    each partition's position after every batch (for progress reports)."""
    active = {tp: span for tp, span in ranges.items() if span[1] > span[0]}
    if not active:
        return
    consumer.assign(list(active))
    for tp, (start, _) in active.items():
        consumer.seek(tp, start)
    while active:
        batches = await consumer.getmany(*active, timeout_ms=500, max_records=max_records)
        found: list[ConsumerRecord[bytes, bytes]] = []
        for tp, records in batches.items():
            stop = active[tp][1] if tp in active else -1
            found.extend(r for r in records if r.offset < stop)
        for tp in list(active):
            position = await consumer.position(tp)
            if positions is not None:
                positions[tp] = position
            if position >= active[tp][1]:
                consumer.pause(tp)
                del active[tp]
        yield found
