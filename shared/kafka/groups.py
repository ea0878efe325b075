"""What a consumer group has committed, read from outside the group (benchmarks and tests
wait on it; a running service reads its own through `shared.kafka.lag`)."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka.client_options import kafka_options


async def committed_offsets(bootstrap_servers: str, group: str) -> dict[TopicPartition, int]:
    """The group's committed offset of every partition it has committed (any topic)."""
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap_servers))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}
