"""BatchSender on the broker: records of one key keep their order across batches that
fill up and a record larger than a batch, every future resolves once acknowledged, and
the router's compressed dispatches read back as written."""

from __future__ import annotations

import asyncio

import pytest

from shared.kafka.producer import BatchSender, make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from tests.support.kafka import read_topic


@pytest.mark.parametrize("submit_mid_round", [True, False], ids=["as-they-fill", "at-flush"])
async def test_one_keys_records_keep_their_order_across_full_and_oversized_batches(
    settings: Settings, submit_mid_round: bool
) -> None:
    await ensure_topics(settings)
    topic = settings.topics.dispatch("stripe")
    # Batches of at most 2 KiB, so 40 records of ~300 bytes fill several of them; one
    # record of 5 KiB fits no batch and goes on its own.
    producer = make_producer(
        settings.kafka_bootstrap_servers, max_batch_size=2048, compression_type="zstd"
    )
    await producer.start()
    try:
        sender = BatchSender(producer)
        await sender.open_round([topic])
        sent: list[bytes] = []
        submitted_mid_round = 0
        for i in range(40):
            value = (b"%03d:" % i) + (b"x" * (5000 if i == 17 else 300))
            sender.add(topic, b"cred:one", value)
            sent.append(value)
            if submit_mid_round and sender.has_full:  # as the router does
                await sender.submit_full()
                submitted_mid_round += 1
        futures = await sender.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert len(futures) >= 4  # one per batch: several really filled up
    assert submitted_mid_round >= (3 if submit_mid_round else 0)
    assert all(f.done() and f.exception() is None for f in futures)
    records = await read_topic(settings.kafka_bootstrap_servers, topic)
    assert {r.partition for r in records} == {records[0].partition}  # one key, one partition
    assert [r.value for r in records] == sent


async def test_a_topic_not_opened_for_the_round_is_refused(settings: Settings) -> None:
    await ensure_topics(settings)
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        sender = BatchSender(producer)
        await sender.open_round([settings.topics.dispatch("stripe")])
        with pytest.raises(KeyError):
            sender.add(settings.topics.dispatch("xero"), b"k", b"v")
        assert await sender.flush() == []
    finally:
        await producer.stop()
