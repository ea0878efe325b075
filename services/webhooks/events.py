"""Pure mapping from a Stripe invoice event to billsync's ExternalStatusUpdate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared import safejson
from shared.contracts import Destination, ExternalInvoiceStatus, ExternalStatusUpdate

STATUS_BY_EVENT_TYPE: dict[str, ExternalInvoiceStatus] = {
    "invoice.finalized": ExternalInvoiceStatus.FINALIZED,
    "invoice.paid": ExternalInvoiceStatus.PAID,
    "invoice.payment_succeeded": ExternalInvoiceStatus.PAID,
    "invoice.payment_failed": ExternalInvoiceStatus.PAYMENT_FAILED,
    "invoice.voided": ExternalInvoiceStatus.VOID,
    "invoice.deleted": ExternalInvoiceStatus.DELETED,
    "invoice.marked_uncollectible": ExternalInvoiceStatus.UNCOLLECTIBLE,
}

BILL_ID_KEY = "billsync_bill_id"
CONFIG_ID_KEY = "billsync_config_id"


MAX_DEPTH = 64  # a Stripe event with an expanded invoice nests about 10 deep


class EventBodyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class StripeEvent:
    id: str
    type: str
    livemode: bool
    invoice_id: str | None
    metadata: dict[str, str]


def parse_event(body: bytes) -> StripeEvent:
    try:
        data = safejson.loads(body, max_depth=MAX_DEPTH)
    except safejson.JsonInputError as exc:
        raise EventBodyError(f"body refused: {exc}") from None
    if not isinstance(data, dict):
        raise EventBodyError("body is not a JSON object")
    event_id, event_type = data.get("id"), data.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        raise EventBodyError("event has no string id and type")
    obj = (data.get("data") or {}).get("object") if isinstance(data.get("data"), dict) else None
    obj = obj if isinstance(obj, dict) else {}
    raw_meta: Any = obj.get("metadata")
    metadata = (
        {str(k): str(v) for k, v in raw_meta.items() if v is not None}
        if isinstance(raw_meta, dict)
        else {}
    )
    invoice_id = obj.get("id")
    return StripeEvent(
        id=event_id,
        type=event_type,
        livemode=bool(data.get("livemode", False)),
        invoice_id=invoice_id if isinstance(invoice_id, str) else None,
        metadata=metadata,
    )


def status_update(
    event: StripeEvent, path_config_id: str, now: datetime | None = None
) -> ExternalStatusUpdate | None:
    """None for event types billsync does not track (or an event without an invoice)."""
    status = STATUS_BY_EVENT_TYPE.get(event.type)
    if status is None or event.invoice_id is None:
        return None
    return ExternalStatusUpdate(
        id=event.id,
        destination=Destination.STRIPE if event.livemode else Destination.STRIPE_TEST,
        external_id=event.invoice_id,
        external_status=status,
        provider_event_type=event.type,
        entity_id=event.metadata.get(BILL_ID_KEY),
        # One Stripe account may serve several configurations: the invoice says whose it is.
        integration_config_id=event.metadata.get(CONFIG_ID_KEY) or path_config_id,
        dt_received=now or datetime.now(UTC),
    )
