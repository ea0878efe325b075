"""Small concurrency helpers for the runner."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator


class KeyedLocks:
    """One lock per key, dropped when nobody holds or waits for it (bounded memory)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class PrioritySlots:
    """A semaphore whose urgent waiters go first: a delivery coming back from a retry wait
    must not queue behind the whole backlog (the commit watermark waits for it)."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._urgent: collections.deque[asyncio.Future[None]] = collections.deque()
        self._normal: collections.deque[asyncio.Future[None]] = collections.deque()

    @contextlib.asynccontextmanager
    async def hold(self, urgent: bool = False) -> AsyncIterator[None]:
        if self._free > 0 and not self._urgent and not self._normal:
            self._free -= 1
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            (self._urgent if urgent else self._normal).append(waiter)
            try:
                await waiter  # the releaser hands its slot over
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # handed a slot while being cancelled: pass it on
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


class KeyedSlots:
    """Bounded concurrency per key (per configuration)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._slots: dict[str, PrioritySlots] = {}

    def get(self, key: str) -> PrioritySlots:
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = PrioritySlots(self._limit)
        return slots
