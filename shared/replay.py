"""Re-publishing bills on the replay topic, which the router consumes with trigger REPLAY.

Live consumer groups are never moved: a replay is new input, routed by the current
configurations and de-duplicated downstream by the invoice map (it updates, not doubles)."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.contracts import Bill, ReplayRequest
from shared.kafka.client_options import kafka_options
from shared.settings import Settings


class ReplaySourceError(ValueError):
    pass


def parse_source(source: str) -> tuple[str, int, int]:
    """ "topic/partition/offset" (as recorded on runs and envelopes)."""
    try:
        topic, partition, offset = source.rsplit("/", 2)
        return topic, int(partition), int(offset)
    except ValueError as exc:
        raise ReplaySourceError(f"not a topic/partition/offset source: {source!r}") from exc


async def read_bill_at(settings: Settings, topic: str, partition: int, offset: int) -> Bill:
    consumer = AIOKafkaConsumer(
        **kafka_options(settings.kafka_bootstrap_servers), group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
        records = batch.get(tp, [])
        if not records or records[0].offset != offset or records[0].value is None:
            raise ReplaySourceError(f"no bill at {topic}/{partition}/{offset} (expired?)")
        value = records[0].value
        if topic == settings.topics.name("bill_replay"):
            return ReplayRequest.model_validate_json(value).bill
        return Bill.model_validate_json(value)
    finally:
        await consumer.stop()


def replay_request(
    settings: Settings,
    bill: Bill,
    topic: str,
    partition: int,
    offset: int,
    config_ids: list[str] | None,
    replay_id: str | None = None,
) -> ReplayRequest:
    return ReplayRequest(
        replay_id=replay_id or f"rpl_{uuid.uuid4().hex[:16]}",
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        approved_source=topic == settings.topics.name("bill_approved"),
        config_ids=config_ids,
        bill=bill,
    )


async def publish_replay(
    producer: AIOKafkaProducer, settings: Settings, request: ReplayRequest
) -> None:
    await producer.send_and_wait(
        settings.topics.name("bill_replay"), request.to_bytes(), key=request.bill.id.encode()
    )


async def resend_from_source(
    settings: Settings, producer: AIOKafkaProducer, source: str, config_ids: list[str]
) -> ReplayRequest:
    """Resend one bill (read back from its input offset) to the given configurations."""
    topic, partition, offset = parse_source(source)
    bill = await read_bill_at(settings, topic, partition, offset)
    request = replay_request(settings, bill, topic, partition, offset, config_ids)
    await publish_replay(producer, settings, request)
    return request
