"""The sink's Kafka side alone (DispatchConsumer) on the real broker, with a handler the
test controls: a revoke abandons unfinished records uncommitted, the new owner handles
them, nothing crashes, the group's offsets end at the partition ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from services.router.envelopes import EnvelopeBuilder
from shared.contracts import DispatchEnvelope, Trigger
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from shared.sinks.consumer import DispatchConsumer
from shared.sinks.options import SinkOptions
from tests.integration.test_sink_guarantees import wait_until
from tests.support.builders import account, bill, config, line
from tests.support.kafka import group_offsets, publish, read_topic

pytestmark = pytest.mark.kafka
OPTIONS = SinkOptions(commit_interval=0.1, revoke_grace=1.0, stop_grace=1.0)


@contextlib.asynccontextmanager
async def consuming(
    settings: Settings, producer: AIOKafkaProducer, handled: list[str], block: set[str]
) -> AsyncIterator[tuple[DispatchConsumer, asyncio.Task[None]]]:
    """A consumer whose handler records each bill id; ids in `block` never finish."""

    async def handler(envelope: DispatchEnvelope) -> None:
        handled.append(envelope.bill.id)
        if envelope.bill.id in block:
            await asyncio.Event().wait()

    consumer = DispatchConsumer(settings, "stripe", OPTIONS, producer, handler)
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer, task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


async def offsets(settings: Settings, group: str) -> tuple[dict[int, int], dict[int, int]]:
    topic = settings.topics.dispatch("stripe")
    return await group_offsets(settings.kafka_bootstrap_servers, group, topic)


async def test_revoke_abandons_unfinished_records_and_the_new_owner_delivers_them(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    cfgs = [config(f"cfg-{i}", "STRIPE_TEST", integrationCredentialsId="c") for i in range(6)]
    builder = EnvelopeBuilder()
    records = []
    for i in range(60):
        b = bill(f"bill-{i}", "acc-1", embed=account("acc-1"), lines=[line("l")])
        cfg = cfgs[i % len(cfgs)]
        [(_, _, body)] = builder.build(b, b.account, [cfg], Trigger.GENERATED, f"t/0/{i}")
        records.append((cfg.id.encode(), body))
    await publish(settings.kafka_bootstrap_servers, settings.topics.dispatch("stripe"), records)
    topic = settings.topics.dispatch("stripe")
    where = {
        DispatchEnvelope.model_validate_json(r.value or b"").bill.id: (r.partition, r.offset)
        for r in await read_topic(settings.kafka_bootstrap_servers, topic)
    }
    stuck = {f"bill-{i}" for i in range(0, 60, 7)}
    group = f"{settings.consumer_group_prefix}-stripe-sink"
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    first: list[str] = []
    second: list[str] = []
    try:
        async with consuming(settings, producer, first, stuck) as (_, a_task):
            await wait_until(lambda: len(first) == 60, "A handled every record once")
            async with consuming(settings, producer, second, set()) as (b, _):
                # B joins: A gives partitions away, abandoning their stuck records
                # uncommitted; B, the new owner, handles them.
                await wait_until(lambda: len(b._trackers) > 0, "B assigned", 60)
                b_parts = {tp.partition for tp in b._trackers}
                moved = {bid for bid in stuck if where[bid][0] in b_parts}
                assert moved, "no stuck record on B's partitions"
                await wait_until(lambda: moved <= set(second), "B delivered the moved ones")

                async def b_committed_to_the_end() -> bool:
                    committed, end = await offsets(settings, group)
                    return all(committed[p] == end[p] for p in b_parts)

                await wait_until(b_committed_to_the_end, "B's partitions committed to the end")
                assert not a_task.done(), a_task  # the revoke did not crash A
            # A never finished its stuck records: its partitions stay committed below them.
            committed, _ = await offsets(settings, group)
            for bid in stuck - moved:
                partition, offset = where[bid]
                assert committed[partition] <= offset, bid
    finally:
        await producer.stop()
