"""Malformed input goes to the dead-letter topic with its original bytes and source offset."""

from __future__ import annotations

import asyncio
import base64
import re
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer, ConsumerRecord
from prometheus_client import Counter

from shared.contracts import DeadLetter

DEAD_LETTERS = Counter(
    "billsync_dead_letters_total",
    "Records sent to the dead-letter topic, by the service that sent them and the reason's "
    "kind (the reason's text before its first colon)",
    ["service", "reason"],
)


def reason_kind(reason: str) -> str:
    """A bounded label from a reason text: its lower-cased head before the first colon."""
    head = reason.split(":", 1)[0].strip().lower()[:40]
    return re.sub(r"[^a-z0-9]+", "_", head).strip("_") or "unspecified"


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
    DEAD_LETTERS.labels(service, reason_kind(reason)).inc()
    key = f"{record.topic}:{record.partition}:{record.offset}".encode()
    future: asyncio.Future[object] = await producer.send(topic, letter.to_bytes(), key=key)
    return future
