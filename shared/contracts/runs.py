"""Integration runs and events, published to `integration-results` by every sink."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from shared.contracts.base import WireModel
from shared.contracts.config import Destination


class RunStatus(StrEnum):
    WAITING = "WAITING"
    STARTED = "STARTED"
    COMPLETE = "COMPLETE"
    ERROR = "ERROR"
    AWAITING_RETRY = "AWAITING_RETRY"
    AUTH_FAILED = "AUTH_FAILED"
    RATE_LIMIT_RETRY = "RATE_LIMIT_RETRY"
    INVOICE_ALREADY_PAID = "INVOICE_ALREADY_PAID"
    DISABLED = "DISABLED"
    TIMEOUT_LIMIT_EXCEEDED = "TIMEOUT_LIMIT_EXCEEDED"
    SKIPPED = "SKIPPED"  # a rule said not to send (e.g. skip zero-total invoices)

    @property
    def is_final(self) -> bool:
        return self not in {
            RunStatus.WAITING,
            RunStatus.STARTED,
            RunStatus.AWAITING_RETRY,
            RunStatus.RATE_LIMIT_RETRY,
        }

    @property
    def is_error(self) -> bool:
        return self in {
            RunStatus.ERROR,
            RunStatus.AUTH_FAILED,
            RunStatus.TIMEOUT_LIMIT_EXCEEDED,
        }


class EventType(StrEnum):
    VALIDATION_ERROR = "integration.validation.error"
    MISSING_ACCOUNT_MAPPING = "integration.missingaccountmapping.error"
    AUTHENTICATION_ERROR = "integration.authentication.error"
    PERFORM_ERROR = "integration.perform.error"
    DISABLED = "integration.disabled.error"
    # A bug in billsync, not the customer's or the provider's: never counts toward
    # auto-disable, never e-mailed to the customer.
    INTERNAL_ERROR = "integration.internal.error"


class IntegrationRun(WireModel):
    record_type: Literal["run"] = "run"
    id: str
    entity_type: Literal["Bill"] = "Bill"
    entity_id: str
    entity_version: int | None = None
    integration_config_id: str
    integration_config_version: int | None = None
    destination: Destination
    status: RunStatus
    dt_started: datetime
    dt_completed: datetime | None = None
    external_id: str | None = None
    url: str | None = None
    error: str | None = None
    parent_integration_run_id: str | None = None
    replayed_from_run_id: str | None = None
    dispatch_id: str | None = None
    trigger: str | None = None
    attempt: int = 1
    account_id: str | None = None
    # The input bill as "topic/partition/offset": what a resend re-reads.
    source: str | None = None


class IntegrationEvent(WireModel):
    record_type: Literal["event"] = "event"
    id: str
    event_type: EventType
    message: str
    integration_config_id: str
    integration_run_id: str | None = None
    entity_id: str | None = None
    destination: Destination | None = None
    dt_created: datetime
    actioned: bool = False


class DeadLetter(WireModel):
    """A malformed input, kept with its original bytes so nothing is lost. An input too
    large for a letter keeps a prefix (`originalTruncated`); its full bytes stay at the
    source coordinates."""

    reason: str
    service: str
    source_topic: str
    source_partition: int
    source_offset: int
    original_key_b64: str | None = None
    original_value_b64: str
    original_value_bytes: int | None = None  # the whole value's length
    original_truncated: bool = False
    dt_failed: datetime


class ExternalInvoiceStatus(StrEnum):
    FINALIZED = "FINALIZED"
    PAID = "PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    VOID = "VOID"
    DELETED = "DELETED"
    UNCOLLECTIBLE = "UNCOLLECTIBLE"


class ExternalStatusUpdate(WireModel):
    """From a verified provider webhook: the destination invoice's status changed."""

    record_type: Literal["externalStatus"] = "externalStatus"
    id: str  # the provider's event id (de-duplication)
    destination: Destination | None = None
    external_id: str  # the provider's invoice id
    external_status: ExternalInvoiceStatus
    provider_event_type: str
    entity_id: str | None = None  # bill id, from the invoice metadata
    integration_config_id: str | None = None
    dt_received: datetime


ResultRecord = Annotated[
    IntegrationRun | IntegrationEvent | ExternalStatusUpdate, Field(discriminator="record_type")
]
ResultRecordAdapter: TypeAdapter[ResultRecord] = TypeAdapter(ResultRecord)
