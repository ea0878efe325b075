"""A rate limiter the test drives: every call waits at the gate until the test admits it,
so a test can hold calls in the limiter for as long as it likes without sleeping."""

from __future__ import annotations

import asyncio

from shared.sinks.ratelimit import AdaptiveRateLimiter, RateSpec


class GateLimiter(AdaptiveRateLimiter):
    def __init__(self) -> None:
        super().__init__(RateSpec(None))
        self.waiting = 0
        self._permits = 0
        self._changed = asyncio.Condition()

    async def acquire(self, endpoint: str) -> float:
        async with self._changed:
            self.waiting += 1
            self._changed.notify_all()
            await self._changed.wait_for(lambda: self._permits > 0)
            self._permits -= 1
            self.waiting -= 1
        return 0.0

    async def until_waiting(self, count: int) -> None:
        """Until `count` calls wait at the gate."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.waiting >= count)

    async def admit(self, count: int) -> None:
        async with self._changed:
            self._permits += count
            self._changed.notify_all()


async def outlast(timeout: float) -> None:
    """Returns once a timeout of `timeout` seconds started now has expired, so every timer
    of that length started earlier (a call timed from before its limiter wait) has fired:
    the marker that what must not happen had its chance."""
    try:
        await asyncio.wait_for(asyncio.Event().wait(), timeout)
    except TimeoutError:
        return
