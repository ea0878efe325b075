"""Malformed input goes to the dead-letter topic with its original bytes and source offset.

A letter always fits the broker's record limit (1 MB by default), however large the input:
base64 grows bytes by a third, so a 900 KB record would make a 1.2 MB letter, which the
broker refuses, and the consumer would die on that record on every restart. The letter
keeps the reason, the source coordinates and the first ORIGINAL_PREFIX_BYTES of the value
(and of the key), says that it is cut and how long the original was; the original stays
readable at its source coordinates until the topic's retention removes it."""

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


# 256 KiB of value (about 342 KiB in base64) and 8 KiB of key keep a letter far below 1 MB.
ORIGINAL_PREFIX_BYTES = 256 * 1024
KEY_PREFIX_BYTES = 8 * 1024
REASON_MAX_CHARS = 2000


def dead_letter_for(record: ConsumerRecord[bytes, bytes], reason: str, service: str) -> DeadLetter:
    value = record.value or b""
    key = record.key
    truncated = len(value) > ORIGINAL_PREFIX_BYTES or (
        key is not None and len(key) > KEY_PREFIX_BYTES
    )
    return DeadLetter(
        reason=reason[:REASON_MAX_CHARS],
        service=service,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        original_key_b64=base64.b64encode(key[:KEY_PREFIX_BYTES]).decode() if key else None,
        original_value_b64=base64.b64encode(value[:ORIGINAL_PREFIX_BYTES]).decode(),
        original_value_bytes=len(value),
        original_truncated=truncated,
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
