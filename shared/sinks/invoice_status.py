"""Provider-side invoice statuses (finalized, paid, void) reaching the invoice map.

The owner rule: **only a destination's sink writes the `invoice-map`**. Services that
learn about an invoice's fate elsewhere (the inbound webhooks service) publish an
`ExternalStatusUpdate` on `integration-results`; the sink follows those for its own
destinations (`StatusFollower`) and applies them under the same per-bill lock its
deliveries hold, so a delivery's write and a status change never overwrite each other.
The provider stays the authority: a destination still finds a finalized invoice locked at
the provider even before the status has arrived."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pydantic
from aiokafka import AIOKafkaConsumer

from shared.contracts import (
    Destination,
    ExternalInvoiceStatus,
    ExternalStatusUpdate,
    ResultRecordAdapter,
)
from shared.kafka.client_options import kafka_options
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger
from shared.sinks.invoice_map import InvoiceMapRecord, InvoiceState

log = get_logger("sink.status")

# An invoice past DRAFT can no longer be edited; payment_failed and uncollectible imply it
# was finalized, so they lock it too. Ranks keep late or reordered updates from downgrading.
LOCK_STATE: dict[ExternalInvoiceStatus, InvoiceState] = {
    ExternalInvoiceStatus.FINALIZED: InvoiceState.FINALIZED,
    ExternalInvoiceStatus.PAYMENT_FAILED: InvoiceState.FINALIZED,
    ExternalInvoiceStatus.UNCOLLECTIBLE: InvoiceState.FINALIZED,
    ExternalInvoiceStatus.PAID: InvoiceState.PAID,
    ExternalInvoiceStatus.VOID: InvoiceState.VOID,
    ExternalInvoiceStatus.DELETED: InvoiceState.DELETED,
}
_RANK = {
    InvoiceState.FINALIZED: 1,
    InvoiceState.PAID: 2,
    InvoiceState.VOID: 3,
    InvoiceState.DELETED: 3,
}


def locked_record(
    record: InvoiceMapRecord, update: ExternalStatusUpdate, now: datetime | None = None
) -> InvoiceMapRecord | None:
    """The map record with the invoice's new state, or None when nothing should change
    (another invoice, or a state that would move backwards)."""
    if record.external_id != update.external_id:
        return None
    new_state = LOCK_STATE[update.external_status]
    if _RANK[new_state] <= _RANK.get(record.state, 0):
        return None
    return record.model_copy(update={"state": new_state, "updated_at": now or datetime.now(UTC)})


def keep_lock(previous: InvoiceMapRecord | None, state: InvoiceState) -> InvoiceState:
    """A delivery's new state, unless the invoice is already known locked further on."""
    if previous is not None and _RANK.get(previous.state, 0) > _RANK.get(state, 0):
        return previous.state
    return state


Apply = Callable[[ExternalStatusUpdate], Awaitable[None]]


class StatusFollower:
    """Follows `integration-results` in its own consumer group (one per sink family) and
    hands each status update for `destinations` to `apply`; commits after applying."""

    def __init__(
        self,
        topic: str,
        bootstrap_servers: str,
        group_id: str,
        destinations: frozenset[Destination],
        apply: Apply,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            topic,
            **kafka_options(bootstrap_servers),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._destinations = destinations
        self._apply = apply
        self._task: asyncio.Task[None] | None = None
        self.applied = 0

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._follow(), name="invoice-status")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        with contextlib.suppress(Exception):
            await self._consumer.stop()

    async def _follow(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=500)
            for records in batches.values():
                for record in records:
                    update = _status_update(record.value)
                    if update is not None and update.destination in self._destinations:
                        await self._apply(update)
                        self.applied += 1
            if batches:
                await self._consumer.commit()


def _status_update(raw: bytes | None) -> ExternalStatusUpdate | None:
    if not raw or b"externalStatus" not in raw:  # runs and events: not ours to read
        return None
    try:
        parsed = ResultRecordAdapter.validate_json(raw)
    except pydantic.ValidationError:
        log.warning("status_update_unreadable")
        return None
    return parsed if isinstance(parsed, ExternalStatusUpdate) else None
