"""The durable map bill + configuration -> destination invoice (compacted topic).

It lets a regenerated bill update the invoice it already has, lets a redelivered envelope
be recognised (recent dispatch ids), and marks a write in progress (PENDING) so that after
a crash the next attempt looks the invoice up at the provider before writing again."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from shared.contracts.base import WireModel

RECENT_DISPATCHES = 20


class InvoiceState(StrEnum):
    PENDING = "PENDING"  # a write was started; the outcome is unknown
    DRAFT = "DRAFT"  # editable at the destination
    FINALIZED = "FINALIZED"  # open/sent/authorised: never silently changed
    PAID = "PAID"
    VOID = "VOID"
    DELETED = "DELETED"
    SKIPPED = "SKIPPED"  # a rule said not to send (e.g. below the minimum charge)
    PENDING_ITEMS = "PENDING_ITEMS"  # Stripe pending invoice items, not yet invoiced


class InvoiceMapRecord(WireModel):
    integration_config_id: str
    bill_id: str
    bill_version: int
    state: InvoiceState
    external_id: str | None = None
    url: str | None = None
    # Provider ids of parts the destination must replace on update (pending items, lines).
    external_item_ids: list[str] = Field(default_factory=list)
    completed_dispatch_ids: list[str] = Field(default_factory=list)
    last_run_id: str | None = None
    updated_at: datetime

    @property
    def key(self) -> str:
        return map_key(self.integration_config_id, self.bill_id)

    def has_completed(self, dispatch_id: str) -> bool:
        return dispatch_id in self.completed_dispatch_ids


def map_key(config_id: str, bill_id: str) -> str:
    return f"{config_id}\x1f{bill_id}"
