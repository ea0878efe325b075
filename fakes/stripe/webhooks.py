"""Outgoing webhooks: Stripe events signed with ``Stripe-Signature: t=...,v1=...``.

Deliveries are fire-and-forget background tasks; failures are logged and recorded in
``deliveries``, never raised into the request that caused the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from .config import WebhookConfig

log = logging.getLogger(__name__)


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    """``t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<payload>" keyed by the endpoint secret>``."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookSender:
    def __init__(self, config: Callable[[], WebhookConfig], clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.deliveries: list[dict[str, Any]] = []

    def wants(self, event_type: str) -> bool:
        config = self._config()
        if not config.url or not config.secret:
            return False
        return config.events is None or event_type in config.events

    def send(self, event: dict[str, Any]) -> None:
        if not self.wants(event["type"]):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("fake stripe: no running loop, webhook %s not sent", event["id"])
            return
        task = loop.create_task(self._deliver(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, event: dict[str, Any]) -> None:
        config = self._config()
        assert config.url is not None and config.secret is not None
        payload = json.dumps(event).encode()
        header = signature_header(payload, config.secret, int(self._clock()))
        record: dict[str, Any] = {"event": event["id"], "type": event["type"], "url": config.url}
        try:
            if self._session is None or self._session.closed:
                self._session = aiohttp.ClientSession()
            async with self._session.post(
                config.url,
                data=payload,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": header,
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                },
                timeout=aiohttp.ClientTimeout(total=config.timeout_seconds),
            ) as response:
                record["status"] = response.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            record["error"] = repr(exc)
            log.warning("fake stripe: webhook %s to %s failed: %r", event["id"], config.url, exc)
        self.deliveries.append(record)

    async def drain(self) -> None:
        """Wait for the deliveries under way (tests use this before asserting)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None
