"""Leases across sink instances, on one Kafka partition: one refresh per credential at a
time, whichever instance asks.

Every claim and release is a record on the single-partition `sink-leases` topic, so every
instance sees them in the same order. For each name the holder is the earliest claim
that is neither released nor expired; a claimant waits until its own claim is the holder
in its view of the topic (which it has read at least up to its claim). A holder that
crashes stops renewing nothing: its claim simply expires after `ttl` seconds, so a crash
never blocks the others for longer than that.

`LeaseBook` is the pure part (records in, holder out)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from shared.contracts.base import WireModel
from shared.kafka.client_options import kafka_options
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger

log = get_logger("sink.leases")


class LeaseRecord(WireModel):
    name: str
    claim_id: str
    release: bool = False
    expires_at: float  # wall-clock seconds (time.time())


@dataclass
class LeaseBook:
    """Claims by name in topic order."""

    claims: dict[str, list[LeaseRecord]] = field(default_factory=dict)

    def apply(self, record: LeaseRecord) -> None:
        queue = self.claims.setdefault(record.name, [])
        if record.release:
            queue[:] = [c for c in queue if c.claim_id != record.claim_id]
        else:
            queue.append(record)
        if not queue:
            del self.claims[record.name]

    def holder(self, name: str, now: float) -> str | None:
        for claim in self.claims.get(name, []):
            if claim.expires_at > now:
                return claim.claim_id
        return None


class KafkaLeases:
    """`async with leases.hold(name):` — at most one holder per name across instances
    (until a crashed holder's claim expires)."""

    def __init__(
        self, topic: str, bootstrap_servers: str, producer: AIOKafkaProducer, ttl: float = 60.0
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap_servers
        self._producer = producer
        self.ttl = ttl
        self.book = LeaseBook()
        self._read_up_to = -1
        self._changed = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **kafka_options(self._bootstrap), group_id=None, enable_auto_commit=False
        )
        await self._consumer.start()
        tp = TopicPartition(self.topic, 0)
        self._consumer.assign([tp])
        await self._consumer.seek_to_beginning(tp)
        self._task = asyncio.create_task(self._follow(), name=f"leases:{self.topic}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._consumer is not None:
            await self._consumer.stop()

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    if record.value:
                        with contextlib.suppress(ValueError):
                            self.book.apply(LeaseRecord.model_validate_json(record.value))
                    self._read_up_to = record.offset
            if batches:
                self._changed.set()

    async def _publish(self, record: LeaseRecord) -> int:
        metadata = await self._producer.send_and_wait(
            self.topic, record.to_bytes(), key=record.name.encode(), partition=0
        )
        return int(metadata.offset)

    @contextlib.asynccontextmanager
    async def hold(self, name: str, timeout: float = 120.0) -> AsyncIterator[None]:
        claim = LeaseRecord(name=name, claim_id=uuid.uuid4().hex, expires_at=time.time() + self.ttl)
        offset = await self._publish(claim)
        deadline = time.monotonic() + timeout
        try:
            while not (
                self._read_up_to >= offset and self.book.holder(name, time.time()) == claim.claim_id
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no lease on {name!r} within {timeout:.0f}s")
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    # Woken by new records; expiry of another claim needs no record.
                    await asyncio.wait_for(self._changed.wait(), 1.0)
            yield
        finally:
            release = claim.model_copy(update={"release": True})
            try:
                await asyncio.shield(self._publish(release))
            except KafkaError:  # not released: the claim expires after `ttl`
                log.warning("lease_not_released", name=name)
