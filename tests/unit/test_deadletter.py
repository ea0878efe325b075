"""A dead letter always fits the broker's record limit, whatever the size of its input."""

from __future__ import annotations

import base64

from aiokafka import ConsumerRecord

from shared.contracts import DeadLetter
from shared.kafka.deadletter import KEY_PREFIX_BYTES, ORIGINAL_PREFIX_BYTES, dead_letter_for

BROKER_RECORD_LIMIT = 1_048_588


def _record(value: bytes, key: bytes | None = b"k") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t", 2, 41, 0, 0, key, value, None, 0, len(value), [])


def test_a_small_input_is_kept_whole() -> None:
    letter = dead_letter_for(_record(b"not json"), "not_json: x", "router")
    assert base64.b64decode(letter.original_value_b64) == b"not json"
    assert letter.original_value_bytes == 8 and letter.original_truncated is False
    assert DeadLetter.model_validate_json(letter.to_bytes()) == letter


def test_a_900_kb_input_keeps_a_prefix_and_fits_the_broker_limit() -> None:
    value = bytes(range(256)) * (900 * 4)  # 921,600 bytes: base64 alone would be 1.2 MB
    key = b"K" * (KEY_PREFIX_BYTES + 10)
    letter = dead_letter_for(_record(value, key), "schema: " + "r" * 10_000, "control")
    assert len(letter.to_bytes()) < BROKER_RECORD_LIMIT // 2
    assert base64.b64decode(letter.original_value_b64) == value[:ORIGINAL_PREFIX_BYTES]
    assert base64.b64decode(letter.original_key_b64 or "") == key[:KEY_PREFIX_BYTES]
    assert letter.original_truncated is True and letter.original_value_bytes == len(value)
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("t", 2, 41)
    assert letter.reason.startswith("schema: ") and len(letter.reason) == 2000
