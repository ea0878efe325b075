"""Outbound `invoice.billing_provider_error` events for Stripe runs that end in error,
signed like Stripe signs its webhooks (`Billsync-Signature: t=..,v1=..`).

The results consumer writes each event to the outbox topic `monitor-webhooks` with the
batch it came from (acknowledged before that batch's offsets are committed). Delivery
reads the outbox in its own consumer group with a few workers, capped exponential backoff
and jitter, and a bounded number of attempts; an outbox offset is committed only once its
event and every earlier one are delivered or finally dropped. A stop leaves the rest
uncommitted, so a queued event survives a restart and is sent by the next start."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from services.monitor import metrics as m
from services.monitor.redact import redact
from services.monitor.settings import MonitorSettings
from services.webhooks.signature import sign
from shared.contracts import Destination, IntegrationRun
from shared.kafka.client_options import kafka_options
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger
from shared.settings import Settings
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
            "error": redact(run.error),
            "account_id": run.account_id,
        },
    }


class _Positions:
    """Offsets of one partition taken from the outbox and not yet finished."""

    def __init__(self) -> None:
        self.pending: set[int] = set()
        self.next = -1  # one past the highest offset taken

    def take(self, offset: int) -> None:
        self.pending.add(offset)
        self.next = max(self.next, offset + 1)

    def committable(self) -> int:
        return min(self.pending) if self.pending else self.next


class ProviderErrorOutbox:
    def __init__(self, settings: Settings, monitor: MonitorSettings) -> None:
        self._settings = settings
        self.topic = settings.topics.name("monitor_webhooks")
        self._url = monitor.webhook_url
        self._secret = monitor.webhook_secret
        self._policy = RetryPolicy(
            monitor.webhook_max_attempts, monitor.webhook_base_delay, monitor.webhook_max_delay
        )
        self._timeout = aiohttp.ClientTimeout(total=monitor.webhook_timeout)
        self._queue: asyncio.Queue[ConsumerRecord[bytes, bytes]] = asyncio.Queue(
            monitor.webhook_queue_size
        )
        self._positions: dict[TopicPartition, _Positions] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()  # ids finished by this process
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._commit_lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._url and self._secret)

    def wants(self, run: IntegrationRun) -> bool:
        return self.enabled and wants_notification(run)

    async def start(self) -> None:
        if not self.enabled:
            return
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._consumer = AIOKafkaConsumer(
            self.topic,
            **kafka_options(self._settings.kafka_bootstrap_servers),
            group_id=f"{self._settings.consumer_group_prefix}-monitor-webhooks",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        self._tasks = [asyncio.create_task(self._fetch(), name="provider-webhook-fetch")]
        self._tasks += [
            asyncio.create_task(self._work(), name=f"provider-webhook-{i}") for i in range(_WORKERS)
        ]

    async def stop(self) -> None:
        """Deliveries in flight are abandoned uncommitted: the next start sends them."""
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        if self._consumer is not None:
            await self._commit()
            await self._consumer.stop()
        if self._session is not None:
            await self._session.close()

    async def join(self) -> None:
        await self._queue.join()

    async def _fetch(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=100)
            for tp, records in batches.items():
                positions = self._positions.setdefault(tp, _Positions())
                for record in records:
                    positions.take(record.offset)
                    await self._queue.put(record)  # bounded: waits for the workers

    async def _work(self) -> None:
        while True:
            record = await self._queue.get()
            try:
                await self._handle(record)
                tp = TopicPartition(record.topic, record.partition)
                positions = self._positions.get(tp)
                if positions is not None:
                    positions.pending.discard(record.offset)
                await self._commit()
            finally:
                self._queue.task_done()

    async def _commit(self) -> None:
        assert self._consumer is not None
        async with self._commit_lock:
            offsets = {
                tp: p.committable()
                for tp, p in self._positions.items()
                if p.committable() > self._committed.get(tp, -1)
            }
            if not offsets:
                return
            try:
                await self._consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                log.warning("provider_error_webhook_commit_failed", error=repr(exc)[:200])
                self._positions.clear()  # a rebalance: what is uncommitted comes again
                return
            self._committed.update(offsets)

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            event = json.loads(record.value or b"")
            event_id = str(event["id"])
        except (ValueError, KeyError, TypeError) as exc:
            log.error("provider_error_webhook_unreadable", offset=record.offset, error=str(exc))
            return
        if event_id in self._seen:
            return  # the same run result written twice (its input was redelivered)
        await self._deliver(event)
        self._seen[event_id] = None
        if len(self._seen) > 10_000:
            self._seen.popitem(last=False)

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
