"""Malformed input goes to the dead-letter topic with its original bytes and source offset."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer, ConsumerRecord

from shared.contracts import DeadLetter


def dead_letter_for(record: ConsumerRecord[bytes, bytes], reason: str, service: str) -> DeadLetter:
    return DeadLetter(
        reason=reason[:2000],
        service=service,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        original_key_b64=base64.b64encode(record.key).decode() if record.key else None,
        original_value_b64=base64.b64encode(record.value or b"").decode(),
        dt_failed=datetime.now(UTC),
    )


async def send_dead_letter(
    producer: AIOKafkaProducer,
    topic: str,
    record: ConsumerRecord[bytes, bytes],
    reason: str,
    service: str,
) -> asyncio.Future[object]:
    letter = dead_letter_for(record, reason, service)
    key = f"{record.topic}:{record.partition}:{record.offset}".encode()
    future: asyncio.Future[object] = await producer.send(topic, letter.to_bytes(), key=key)
    return future
