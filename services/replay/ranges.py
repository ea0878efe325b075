"""Per-partition offset ranges [start, stop) for a replay, fixed when the replay starts."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.replay.options import ReplayInputError, ReplayOptions
from shared.kafka.ranges import topic_partitions


@dataclass(frozen=True, slots=True)
class PartitionRange:
    partition: int
    start: int
    stop: int  # exclusive

    @property
    def size(self) -> int:
        return max(0, self.stop - self.start)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    found = await topic_partitions(consumer, topic)
    if found:
        return [tp.partition for tp in found]
    raise ReplayInputError(
        f"topic {topic!r} does not exist on the broker; check the topic "
        f"prefix setting (BILLSYNC_TOPIC_PREFIX) or run `billsync topics "
        f"create`"
    )


async def _at_time(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], ms: int, end: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """First offset with a timestamp >= ms per partition (the end when there is none)."""
    found = await consumer.offsets_for_times({tp: ms for tp in tps})
    return {tp: found[tp].offset if found.get(tp) is not None else end[tp] for tp in tps}


async def resolve_ranges(
    consumer: AIOKafkaConsumer, topic: str, opts: ReplayOptions
) -> list[PartitionRange]:
    partitions = await _partitions(consumer, topic)
    if opts.partition is not None:
        if opts.partition not in partitions:
            raise ReplayInputError(
                f"partition {opts.partition} does not exist: {topic} has "
                f"partitions 0..{len(partitions) - 1}"
            )
        partitions = [opts.partition]
    tps = [TopicPartition(topic, p) for p in partitions]
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    if opts.from_offset is not None:
        _check_from_offset(opts.from_offset, tps, begin, end)
        start = {tp: max(opts.from_offset, begin[tp]) for tp in tps}
    else:
        assert opts.from_time_ms is not None
        start = await _at_time(consumer, tps, opts.from_time_ms, end)
    if opts.to_offset is not None:
        stop = {tp: min(opts.to_offset + 1, end[tp]) for tp in tps}
    elif opts.to_time_ms is not None:
        stop = await _at_time(consumer, tps, opts.to_time_ms, end)
    else:
        stop = dict(end)
    return [PartitionRange(tp.partition, start[tp], max(start[tp], stop[tp])) for tp in tps]


def _check_from_offset(
    offset: int,
    tps: list[TopicPartition],
    begin: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
) -> None:
    gone = [tp for tp in tps if offset < begin[tp] < end[tp]]
    if gone:
        spans = ", ".join(f"p{tp.partition}: {begin[tp]}..{end[tp] - 1}" for tp in gone)
        raise ReplayInputError(
            f"offset {offset} is out of range: records before it were "
            f"deleted by retention ({spans}); use a larger --from-offset or "
            f"--from-time"
        )
    if all(offset > end[tp] for tp in tps):
        spans = ", ".join(f"p{tp.partition}: {begin[tp]}..{end[tp] - 1}" for tp in tps)
        raise ReplayInputError(
            f"offset {offset} is out of range: past the end of every partition ({spans})"
        )
