"""Stripe event -> ExternalStatusUpdate mapping and the invoice-map locking the sink
applies (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.webhooks.events import (
    EventBodyError,
    parse_event,
    status_update,
)
from services.webhooks.settings import WebhookSettings
from shared.contracts import Destination, ExternalInvoiceStatus
from shared.sinks.invoice_map import InvoiceMapRecord, InvoiceState
from shared.sinks.invoice_status import keep_lock
from shared.sinks.invoice_status import locked_record as updated_map_record


def _event(kind: str, livemode: bool = False, **meta: str) -> bytes:
    metadata = {"billsync_bill_id": "bill-1", "billsync_config_id": "cfg-1", **meta}
    return json.dumps(
        {
            "id": "evt_1",
            "type": kind,
            "livemode": livemode,
            "data": {"object": {"id": "in_1", "metadata": metadata}},
        }
    ).encode()


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("invoice.finalized", "FINALIZED"),
        ("invoice.paid", "PAID"),
        ("invoice.payment_succeeded", "PAID"),
        ("invoice.payment_failed", "PAYMENT_FAILED"),
        ("invoice.voided", "VOID"),
        ("invoice.deleted", "DELETED"),
        ("invoice.marked_uncollectible", "UNCOLLECTIBLE"),
    ],
)
def test_event_types_map_to_statuses(kind: str, status: str) -> None:
    update = status_update(parse_event(_event(kind)), "cfg-path")
    assert update is not None
    assert update.external_status == ExternalInvoiceStatus(status)
    assert (update.entity_id, update.integration_config_id) == ("bill-1", "cfg-1")
    assert update.external_id == "in_1" and update.id == "evt_1"
    assert update.destination is Destination.STRIPE_TEST


def test_other_types_are_ignored_and_live_mode_is_stripe() -> None:
    assert status_update(parse_event(_event("invoice.created")), "cfg") is None
    update = status_update(parse_event(_event("invoice.paid", livemode=True)), "cfg")
    assert update is not None and update.destination is Destination.STRIPE


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"type": "invoice.paid"}'])
def test_unparseable_bodies(body: bytes) -> None:
    with pytest.raises(EventBodyError):
        parse_event(body)


def _record(state: InvoiceState, external_id: str = "in_1") -> InvoiceMapRecord:
    return InvoiceMapRecord(
        integration_config_id="cfg-1",
        bill_id="bill-1",
        bill_version=1,
        state=state,
        external_id=external_id,
        updated_at=datetime.now(UTC),
    )


def test_map_record_is_locked_and_never_moves_back() -> None:
    paid = status_update(parse_event(_event("invoice.paid")), "cfg")
    final = status_update(parse_event(_event("invoice.finalized")), "cfg")
    failed = status_update(parse_event(_event("invoice.payment_failed")), "cfg")
    assert paid and final and failed
    moved = updated_map_record(_record(InvoiceState.DRAFT), paid)
    assert moved is not None and moved.state is InvoiceState.PAID
    assert updated_map_record(_record(InvoiceState.PAID), final) is None
    locked = updated_map_record(_record(InvoiceState.DRAFT), failed)
    assert locked is not None and locked.state is InvoiceState.FINALIZED
    assert updated_map_record(_record(InvoiceState.DRAFT, "in_other"), paid) is None


def test_the_service_listens_on_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BILLSYNC_WEBHOOKS_HOST", raising=False)
    assert WebhookSettings().host == "127.0.0.1"


def test_a_delivery_never_unlocks_a_locked_invoice() -> None:
    assert keep_lock(_record(InvoiceState.PAID), InvoiceState.DRAFT) is InvoiceState.PAID
    assert keep_lock(_record(InvoiceState.DRAFT), InvoiceState.FINALIZED) is (
        InvoiceState.FINALIZED
    )
    assert keep_lock(None, InvoiceState.DRAFT) is InvoiceState.DRAFT
