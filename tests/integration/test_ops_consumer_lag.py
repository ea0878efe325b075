"""Consumer lag is end offset minus committed offset of the partitions a consumer owns,
measured by the consuming service itself (shared.kafka.lag)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from shared.kafka.client_options import kafka_options
from shared.kafka.lag import LagWatcher
from shared.kafka.topics import TopicSpec, ensure_topics
from shared.settings import Settings
from tests.support.kafka import publish

pytestmark = pytest.mark.kafka


def gauge(name: str, group: str, topic: str, partition: int) -> float | None:
    labels = {"group": group, "topic": topic, "partition": str(partition)}
    return REGISTRY.get_sample_value(name, labels)


async def test_lag_follows_commits_and_assignment(settings: Settings) -> None:
    topic = settings.topics.name("bill_generated")
    await ensure_topics(settings, [TopicSpec(topic, 2)])
    await publish(
        settings.kafka_bootstrap_servers,
        topic,
        [(b"k", f"{i}".encode()) for i in range(7)],  # one key: all in one partition
    )
    group = f"{settings.consumer_group_prefix}-lag-test"
    consumer = AIOKafkaConsumer(
        topic,
        **kafka_options(settings.kafka_bootstrap_servers),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    watcher = LagWatcher(consumer, group, interval=0.1)
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        lags = await watcher.measure()
        loaded = next(tp for tp, lag in lags.items() if lag)
        assert sorted(lags.values()) == [0, 7]  # nothing committed yet: all 7 pending
        assert gauge("billsync_kafka_consumer_lag", group, topic, loaded.partition) == 7

        await consumer.commit({loaded: 3})
        assert (await watcher.measure())[loaded] == 4
        assert (
            gauge("billsync_kafka_consumer_committed_offset", group, topic, loaded.partition) == 3
        )

        watcher.start()  # the background task keeps the gauge current
        await consumer.commit({loaded: 7})
        for _ in range(100):
            if gauge("billsync_kafka_consumer_lag", group, topic, loaded.partition) == 0:
                break
            await asyncio.sleep(0.1)  # polling the gauge the background task updates
        assert gauge("billsync_kafka_consumer_lag", group, topic, loaded.partition) == 0
    finally:
        await watcher.stop()
        await consumer.stop()
    # Stopped: the instance no longer owns the partitions, so it reports none of them.
    for partition in (0, 1):
        assert gauge("billsync_kafka_consumer_lag", group, topic, partition) is None
