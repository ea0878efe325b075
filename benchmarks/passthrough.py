"""The baseline: a plain aiokafka consume-and-produce pass-through with the router's commit
discipline (produce, wait for acks, commit), no parsing. Prints READY when consuming."""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer

from shared.kafka.client_options import kafka_options
from shared.kafka.producer import make_producer
from shared.settings import get_settings


async def main() -> None:
    settings = get_settings()
    source, sink = settings.topics.name("bill_generated"), settings.topics.dispatch("xero")
    producer = make_producer(settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(
        source,
        **kafka_options(settings.kafka_bootstrap_servers),
        group_id=f"{settings.consumer_group_prefix}-passthrough",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await producer.start()
    await consumer.start()
    print("READY", flush=True)
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            futures = []
            offsets = {}
            for tp, records in batches.items():
                for record in records:
                    futures.append(await producer.send(sink, record.value, key=record.key))
                offsets[tp] = records[-1].offset + 1
            if futures:
                await asyncio.gather(*futures)
            if offsets:
                await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
