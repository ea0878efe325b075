"""Outbound `invoice.billing_provider_error` events for Stripe runs that end in error,
signed like Stripe signs its webhooks (`Billsync-Signature: t=..,v1=..`).

Delivery runs in background workers with capped exponential backoff and jitter, a bounded
number of attempts and a bounded queue: the results consumer only enqueues. Pending
deliveries live in memory, so a restart drops them (logged per event when stopping)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from typing import Any

import aiohttp

from services.monitor import metrics as m
from services.monitor.settings import MonitorSettings
from services.webhooks.signature import sign
from shared.contracts import Destination, IntegrationRun
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger
from shared.sinks.backoff import RetryPolicy

log = get_logger("monitor")

EVENT_TYPE = "invoice.billing_provider_error"
SIGNATURE_HEADER = "Billsync-Signature"
_STRIPE = {Destination.STRIPE, Destination.STRIPE_TEST}
_WORKERS = 4


def wants_notification(run: IntegrationRun) -> bool:
    return run.destination in _STRIPE and run.status.is_error


def provider_error_event(run: IntegrationRun, now: float | None = None) -> dict[str, Any]:
    # Deterministic id: a redelivered run result yields the same event, receivers de-dupe.
    digest = hashlib.sha256(f"{run.id}\x1f{run.status.value}\x1f{run.attempt}".encode())
    return {
        "id": f"evt_{digest.hexdigest()[:24]}",
        "object": "event",
        "type": EVENT_TYPE,
        "created": int(time.time() if now is None else now),
        "data": {
            "bill_id": run.entity_id,
            "bill_version": run.entity_version,
            "config_id": run.integration_config_id,
            "run_id": run.id,
            "destination": run.destination.value,
            "status": run.status.value,
            "error": run.error,
            "account_id": run.account_id,
        },
    }


class ProviderErrorNotifier:
    def __init__(self, settings: MonitorSettings) -> None:
        self._url = settings.webhook_url
        self._secret = settings.webhook_secret
        self._policy = RetryPolicy(
            settings.webhook_max_attempts, settings.webhook_base_delay, settings.webhook_max_delay
        )
        self._timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(settings.webhook_queue_size)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._url and self._secret)

    async def start(self) -> None:
        if not self.enabled:
            return
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._workers = [
            asyncio.create_task(self._work(), name=f"provider-webhook-{i}") for i in range(_WORKERS)
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._workers)
        while not self._queue.empty():
            self._drop(self._queue.get_nowait(), "shutdown")
        if self._session is not None:
            await self._session.close()

    def submit(self, run: IntegrationRun) -> bool:
        """Never blocks: a full queue drops the event (logged and counted)."""
        if not self.enabled or not wants_notification(run):
            return False
        event = provider_error_event(run)
        if event["id"] in self._seen:
            return False
        self._seen[event["id"]] = None
        if len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._drop(event, "queue_full")
            return False
        m.WEBHOOKS.labels("queued").inc()
        return True

    async def join(self) -> None:
        await self._queue.join()

    def _drop(self, event: dict[str, Any], reason: str) -> None:
        m.WEBHOOKS.labels("dropped").inc()
        log.error(
            "provider_error_webhook_dropped",
            reason=reason,
            event_id=event["id"],
            integration_config_id=event["data"]["config_id"],
            bill_id=event["data"]["bill_id"],
            integration_run_id=event["data"]["run_id"],
        )

    async def _work(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._deliver(event)
            finally:
                self._queue.task_done()

    async def _deliver(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, separators=(",", ":")).encode()
        for attempt in range(1, self._policy.max_attempts + 1):
            retry_after, outcome = await self._post(body)
            if outcome == "delivered":
                m.WEBHOOKS.labels("delivered").inc()
                log.info(
                    "provider_error_webhook_delivered",
                    event_id=event["id"],
                    attempt=attempt,
                    integration_run_id=event["data"]["run_id"],
                )
                return
            if outcome == "rejected" or attempt == self._policy.max_attempts:
                break
            m.WEBHOOKS.labels("retried").inc()
            await asyncio.sleep(self._policy.delay(attempt, retry_after))
        self._drop(event, f"{outcome} after {attempt} attempt(s)")

    async def _post(self, body: bytes) -> tuple[float | None, str]:
        """(Retry-After seconds, outcome): delivered, retry or rejected (a 4xx won't heal)."""
        assert self._session is not None and self._url and self._secret
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret.get_secret_value(), body),
        }
        try:
            async with self._session.post(self._url, data=body, headers=headers) as resp:
                if resp.status < 300:
                    return None, "delivered"
                retryable = resp.status >= 500 or resp.status in (408, 409, 425, 429)
                log.warning("provider_error_webhook_refused", status=resp.status)
                return _retry_after(resp.headers.get("Retry-After")), (
                    "retry" if retryable else "rejected"
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("provider_error_webhook_unreachable", error=repr(exc)[:200])
            return None, "retry"


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
