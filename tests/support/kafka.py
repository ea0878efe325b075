"""Test helpers that talk to the real broker: publish records, read a topic to the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from shared.kafka.client_options import kafka_options
from shared.kafka.ranges import read_ranges, topic_partitions

Record = ConsumerRecord[bytes, bytes]


async def publish(
    bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes | None]]
) -> None:
    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all")
    await producer.start()
    try:
        for key, value in items:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str) -> list[Record]:
    """Every record currently in the topic (all partitions, from the beginning)."""
    consumer = AIOKafkaConsumer(
        **kafka_options(bootstrap),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        if not tps:
            return []
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        spans = {tp: (begin[tp], end[tp]) for tp in tps}
        out: list[Record] = []
        async for records in read_ranges(consumer, spans, max_records=None):
            out.extend(records)
        return out
    finally:
        await consumer.stop()


async def wait_for(
    bootstrap: str,
    topic: str,
    predicate: Callable[[list[Record]], bool],
    timeout: float = 30.0,
) -> list[Record]:
    """Poll the topic until predicate(records) holds; fail with what was seen."""
    deadline = time.monotonic() + timeout
    records: list[Record] = []
    while time.monotonic() < deadline:
        records = await read_topic(bootstrap, topic)
        if predicate(records):
            return records
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting on {topic}: {len(records)} records")


def values(records: list[Record]) -> list[Any]:
    import json

    return [json.loads(r.value) for r in records if r.value is not None]


async def group_offsets(
    bootstrap: str, group: str, topic: str
) -> tuple[dict[int, int], dict[int, int]]:
    """(committed, end) offsets of a consumer group per partition of a topic."""
    consumer = AIOKafkaConsumer(
        **kafka_options(bootstrap), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic, attempts=50)
        assert tps, f"no metadata for {topic}"
        end = await consumer.end_offsets(tps)
        committed = {tp.partition: (await consumer.committed(tp)) or 0 for tp in tps}
        return committed, {tp.partition: end[tp] for tp in tps}
    finally:
        await consumer.stop()
