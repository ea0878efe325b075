"""Invoice-level fields of a plan: metadata, custom fields, collection method, due date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from shared.contracts import Account, Bill
from shared.contracts.config import (
    CollectionMethod,
    StripeDestinationConfig,
    StripeIntegrationConfig,
    StripeMappingTarget,
)
from shared.sinks.errors import FatalBillError

from . import fields

BILL_ID = "billsync_bill_id"
ACCOUNT_ID = "billsync_account_id"
CONFIG_ID = "billsync_config_id"
BILL_VERSION = "billsync_bill_version"
LINE_ID = "billsync_line_id"
LINES_DIGEST = "billsync_lines_digest"  # set with the lines, atomically (add_lines)
ITEM_DIGEST = "billsync_item_digest"
FIELDS_DIGEST = "billsync_fields_digest"  # of every invoice field billsync sets


@dataclass(frozen=True)
class CustomField:
    name: str
    value: str


def invoice_metadata(
    bill: Bill, config: StripeIntegrationConfig, sources: fields.Sources
) -> dict[str, str]:
    meta = {
        BILL_ID: bill.id,
        ACCOUNT_ID: bill.account_id,
        CONFIG_ID: config.id,
        BILL_VERSION: str(bill.version),
    }
    for index, mapping in enumerate(config.destination_config.field_mappings):
        if mapping.target is not StripeMappingTarget.INVOICE_METADATA:
            continue
        value = fields.resolve(mapping.source, sources)
        if value is not None:
            where = fields.describe(mapping, index)
            fields.check_value(value, fields.METADATA_VALUE_MAX, "metadata value", where)
            meta[mapping.name or ""] = value
    fields.check_key_count(len(meta) + 2, "invoice metadata")  # + the two digests
    return meta


def custom_fields(
    bill: Bill, settings: StripeDestinationConfig, sources: fields.Sources
) -> tuple[CustomField, ...]:
    found: list[tuple[CustomField, str]] = []
    if settings.po_number_custom_field and bill.purchase_order_number:
        found.append(
            (
                CustomField(settings.po_number_custom_field, bill.purchase_order_number),
                "poNumberCustomField",
            )
        )
    for index, mapping in enumerate(settings.field_mappings):
        if mapping.target is StripeMappingTarget.INVOICE_CUSTOM_FIELD:
            value = fields.resolve(mapping.source, sources)
            if value is not None:
                found.append(
                    (CustomField(mapping.name or "", value), fields.describe(mapping, index))
                )
    for custom, where in found:
        fields.check_value(custom.name, fields.CUSTOM_FIELD_NAME_MAX, "custom field name", where)
        fields.check_value(custom.value, fields.CUSTOM_FIELD_VALUE_MAX, "custom field value", where)
    if len(found) > fields.MAX_CUSTOM_FIELDS:
        names = ", ".join(where for _, where in found)
        raise FatalBillError(
            f"{len(found)} invoice custom fields ({names}); Stripe allows "
            f"{fields.MAX_CUSTOM_FIELDS} including the PO number"
        )
    return tuple(custom for custom, _ in found)


def collection_method(settings: StripeDestinationConfig, account: Account) -> CollectionMethod:
    name = settings.collection_method_custom_field
    value = account.custom_fields.get(name) if name else None
    if isinstance(value, str) and value.strip().lower() in {m.value for m in CollectionMethod}:
        return CollectionMethod(value.strip().lower())
    return settings.collection_method


def due_timestamp(day: date) -> int:
    # Noon UTC keeps the calendar date in every timezone from UTC-11 to UTC+11.
    return int(datetime.combine(day, time(12), tzinfo=UTC).timestamp())
