"""Reading fixed offset ranges of a topic's partitions once, without a consumer group:
the console's recent bills and a replay's range read through this one loop (a compacted
table, which keeps following its topic, reads through `shared.kafka.table`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


async def read_ranges(
    consumer: AIOKafkaConsumer,
    ranges: Mapping[TopicPartition, tuple[int, int]],
    positions: dict[TopicPartition, int] | None = None,
    max_records: int = 2000,
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
