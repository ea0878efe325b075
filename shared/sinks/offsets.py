"""Commit only past finished work: per partition, the committable offset is the lowest
offset still in flight (or one past the highest seen when nothing is)."""

from __future__ import annotations

import heapq


class OffsetTracker:
    def __init__(self) -> None:
        self._pending: list[int] = []  # min-heap of started offsets
        self._done: set[int] = set()
        self._highest = -1

    def start(self, offset: int) -> None:
        heapq.heappush(self._pending, offset)
        self._highest = max(self._highest, offset)

    def finish(self, offset: int) -> None:
        self._done.add(offset)
        while self._pending and self._pending[0] in self._done:
            self._done.discard(heapq.heappop(self._pending))

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def committable(self) -> int | None:
        """The offset to commit (Kafka's "next offset to read"), None before any record."""
        if self._pending:
            return self._pending[0]
        return self._highest + 1 if self._highest >= 0 else None
