"""Commit only past finished work: per partition, the committable offset is the lowest
offset still in flight (or one past the highest seen when nothing is).

An offset may be started more than once (a record fetched again after a seek or a
rebalance while its first handling still runs): it stays in flight until every start has
finished. An abandoned offset (a stop or a revoke cancelled its handling) is simply never
finished, so the commit never passes it."""

from __future__ import annotations

import heapq


class OffsetTracker:
    def __init__(self) -> None:
        self._heap: list[int] = []  # distinct offsets in flight (min-heap)
        self._starts: dict[int, int] = {}  # offset -> unfinished starts
        self._highest = -1

    def start(self, offset: int) -> None:
        count = self._starts.get(offset, 0)
        if count == 0:
            heapq.heappush(self._heap, offset)
        self._starts[offset] = count + 1
        self._highest = max(self._highest, offset)

    def finish(self, offset: int) -> None:
        count = self._starts.get(offset, 0)
        if count <= 0:
            return  # never started here (a tracker replaced by a rebalance): ignore
        if count > 1:
            self._starts[offset] = count - 1
            return
        del self._starts[offset]
        while self._heap and self._heap[0] not in self._starts:
            heapq.heappop(self._heap)

    @property
    def in_flight(self) -> int:
        return sum(self._starts.values())

    def committable(self) -> int | None:
        """The offset to commit (Kafka's "next offset to read"), None before any record."""
        if self._heap:
            return self._heap[0]
        return self._highest + 1 if self._highest >= 0 else None
