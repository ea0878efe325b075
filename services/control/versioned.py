"""A compacted-topic view that its single writer updates as soon as the broker
acknowledges a write.

The follower reads the same records later; a per-key offset keeps it from putting back
an older value over a newer one the writer already applied (otherwise a read-modify-write
in that window would build on stale data and lose an update)."""

from __future__ import annotations

from typing import TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord

from shared.kafka.table import CompactedTable

V = TypeVar("V")


class VersionedTable(CompactedTable[V]):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._offsets: dict[str, int] = {}

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is not None:
            key = record.key.decode("utf-8", "replace")
            if self._offsets.get(key, -1) >= record.offset:
                return
            self._offsets[key] = record.offset
        super()._apply(record)

    def put(self, key: str, value: V | None, offset: int) -> None:
        if self._offsets.get(key, -1) >= offset:
            return
        self._offsets[key] = offset
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value

    async def write(
        self, producer: AIOKafkaProducer, key: str, value: V | None, payload: bytes | None
    ) -> None:
        """Publish (None = tombstone), wait for the broker, then apply locally."""
        metadata = await producer.send_and_wait(self.topic, payload, key=key.encode())
        self.put(key, value, metadata.offset)
