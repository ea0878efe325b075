"""A prepared bill -> a `StripeInvoicePlan` (pure: no I/O, no clock).

Everything Stripe would refuse is refused here, before the first call, as FatalBillError:
an unknown currency, a line in another currency, amounts beyond 8 digits of minor units,
custom fields and metadata beyond Stripe's limits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from shared.contracts import Account, Bill, LineItem
from shared.contracts.config import (
    CollectionMethod,
    StripeDestinationConfig,
    StripeIntegrationConfig,
    StripeMappingTarget,
)
from shared.money import format_decimal, from_minor_units, minor_unit_exponent
from shared.sinks.errors import FatalBillError

from . import fields
from .invoice_fields import (
    BILL_ID,
    BILL_VERSION,
    CONFIG_ID,
    FIELDS_DIGEST,
    ITEM_DIGEST,
    LINE_ID,
    LINES_DIGEST,
    CustomField,
    collection_method,
    custom_fields,
    due_timestamp,
    invoice_metadata,
)
from .lines import Period, PlannedLine, is_integral, period, plain, plan_line
from .money import STRIPE_MAX_MINOR_UNITS, stripe_minimum_charge_minor

MAX_LINES = 250  # Stripe's limit per invoice


class Mode(StrEnum):
    INVOICE = "invoice"  # createStripeInvoice: a standalone invoice with the bill's lines
    PENDING_ITEMS = "pending_items"  # invoice items the next subscription invoice picks up


@dataclass(frozen=True)
class StripeInvoicePlan:
    mode: Mode
    customer_id: str
    currency: str  # lowercase, as Stripe wants it
    collection_method: CollectionMethod
    auto_advance: bool
    finalize: bool
    days_until_due: int | None  # only with send_invoice and no due date
    due_date: int | None  # unix seconds; only with send_invoice and sendDueDate
    custom_fields: tuple[CustomField, ...]
    metadata: Mapping[str, str]
    lines: tuple[PlannedLine, ...]
    total: int  # minor units
    lines_digest: str
    skip_reason: str | None = None
    collapsed: bool = False
    decimal_quantities: bool = False  # the bill has non-integer quantities

    @property
    def bill_version(self) -> str:
        return self.metadata[BILL_VERSION]

    @property
    def fields_digest(self) -> str:
        return self.metadata[FIELDS_DIGEST]


def plan_invoice(
    bill: Bill, account: Account, config: StripeIntegrationConfig, customer_id: str
) -> StripeInvoicePlan:
    settings = config.destination_config
    currency = _currency(bill)
    mode = Mode.INVOICE if settings.create_stripe_invoice else Mode.PENDING_ITEMS
    fields.check_mappings(settings.field_mappings)
    sources = fields.Sources(bill, account)
    items = [i for i in bill.line_items if settings.show_zero_quantity_lines or not _empty(i)]
    for item in items:
        if item.currency and item.currency.upper() != bill.currency:
            raise FatalBillError(
                f"line {item.id} is in {item.currency}, the bill in "
                f"{bill.currency}; a Stripe invoice has one currency"
            )
    has_decimals = any(not is_integral(i.quantity) for i in items)
    decimal_mode = has_decimals and not settings.send_decimal_quantities
    fallback = period(bill.start_date, bill.end_date)
    reserved = 1 if mode is Mode.INVOICE else 5  # billsync's own keys on each line
    planned = [
        _line(i, settings, sources, currency, decimal_mode, fallback, reserved) for i in items
    ]
    total = sum(line.amount for line in planned)
    _check_amounts(planned, total, currency)
    collapsed = len(planned) > MAX_LINES
    if collapsed:
        planned = [_collapse(len(planned), total, settings, currency, fallback)]
    meta = invoice_metadata(bill, config, sources)
    if mode is Mode.PENDING_ITEMS:
        planned = [_as_item(line, meta) for line in planned]
    for line in planned:
        _check_strings(line)
    method = collection_method(settings, account)
    send = method is CollectionMethod.SEND_INVOICE
    due: int | None = None
    if send and settings.send_due_date and bill.due_date is not None:
        due = due_timestamp(bill.due_date)  # charge_automatically has no due date at Stripe
    days = settings.days_until_due if send and due is None else None
    customs = custom_fields(bill, settings, sources)
    lines_digest = digest([currency, [_canonical(line) for line in planned]])
    # Lets a recovered draft that already carries these exact fields skip the update.
    meta[FIELDS_DIGEST] = digest(
        [
            method.value,
            settings.leave_invoices_as_drafts,
            days,
            due,
            [[f.name, f.value] for f in customs],
            meta,
        ]
    )
    fields.check_metadata(
        {**meta, LINES_DIGEST: lines_digest}, f"invoice metadata of bill {fields.short(bill.id)}"
    )
    return StripeInvoicePlan(
        mode=mode,
        customer_id=customer_id,
        currency=currency,
        collection_method=method,
        auto_advance=not settings.leave_invoices_as_drafts,
        finalize=not settings.leave_invoices_as_drafts,
        days_until_due=days,
        due_date=due,
        custom_fields=customs,
        metadata=meta,
        lines=tuple(planned),
        total=total,
        lines_digest=lines_digest,
        skip_reason=_skip_reason(settings, mode, total, currency),
        collapsed=collapsed,
        decimal_quantities=has_decimals,
    )


def _currency(bill: Bill) -> str:
    try:
        minor_unit_exponent(bill.currency)
    except ValueError as exc:
        raise FatalBillError(f"bill currency {bill.currency!r}: {exc}") from exc
    return bill.currency.lower()


def _empty(item: LineItem) -> bool:
    # A zero-quantity line that still carries money (a fee, a credit) is never dropped.
    return item.quantity == 0 and item.subtotal == 0


def _line(
    item: LineItem,
    settings: StripeDestinationConfig,
    sources: fields.Sources,
    currency: str,
    decimal_mode: bool,
    fallback: Period | None,
    reserved: int,
) -> PlannedLine:
    product = settings.price_data_product_id
    metadata = {LINE_ID: item.id}
    for index, mapping in enumerate(settings.field_mappings):
        if mapping.target not in fields.LINE_TARGETS:
            continue
        value = fields.resolve(mapping.source, sources, item)
        if value is None:
            continue
        if mapping.target is StripeMappingTarget.LINE_PRODUCT:
            product = value
        else:
            where = f"line {item.id}: {fields.describe(mapping, index)}"
            fields.check_value(value, fields.METADATA_VALUE_MAX, "metadata value", where)
            metadata[mapping.name or ""] = value
    fields.check_key_count(len(metadata) - 1 + reserved, f"line {item.id}")
    return plan_line(
        item,
        currency=currency,
        product=product,
        decimal_mode=decimal_mode,
        decimal_quantities=settings.send_decimal_quantities,
        always_show=settings.always_show_price_and_quantity,
        fallback=fallback,
        metadata=metadata,
    )


def _check_strings(line: PlannedLine) -> None:
    """Stripe's string limits on what a line sends, checked before the first call so a bill
    is never refused half-way (after its invoice exists)."""
    where = f"line {fields.short(line.key)}"
    if len(line.description) > fields.DESCRIPTION_MAX:
        raise FatalBillError(
            f"{where}: the description is {len(line.description)} characters (quantity and "
            f"unit price included); Stripe allows {fields.DESCRIPTION_MAX}. Shorten the line's "
            "description or product name in the billing engine, then resend the bill"
        )
    if line.product is not None:
        fields.check_value(line.product, fields.STRING_MAX, "product id", where)
    fields.check_metadata(line.metadata, where)


def _check_amounts(lines: list[PlannedLine], total: int, currency: str) -> None:
    limit = _money(STRIPE_MAX_MINOR_UNITS, currency)
    for line in lines:
        if abs(line.amount) > STRIPE_MAX_MINOR_UNITS:
            raise FatalBillError(
                f"line {line.key} amount {_money(line.amount, currency)} exceeds "
                f"Stripe's maximum of {limit}"
            )
    if abs(total) > STRIPE_MAX_MINOR_UNITS:
        raise FatalBillError(
            f"bill total {_money(total, currency)} exceeds Stripe's maximum "
            f"of {limit} per invoice; ask Stripe to raise "
            f"the limit or split the bill"
        )


def _money(minor: int, currency: str) -> str:
    return f"{format_decimal(from_minor_units(minor, currency), grouping=True)} {currency.upper()}"


def _collapse(
    count: int,
    total: int,
    settings: StripeDestinationConfig,
    currency: str,
    fallback: Period | None,
) -> PlannedLine:
    product = settings.price_data_product_id if total >= 0 else None
    return PlannedLine(
        key="collapsed",
        description=f"{settings.company_name} — {count} charges, total {_money(total, currency)}",
        amount=total,
        product=product,
        quantity=1 if product else None,
        unit_amount_decimal=plain(Decimal(total)) if product else None,
        period=fallback,
        metadata={LINE_ID: "collapsed", "billsync_line_count": str(count)},
    )


def _as_item(line: PlannedLine, invoice_meta: Mapping[str, str]) -> PlannedLine:
    """Pending items have no invoice to carry the bill's ids: each item carries them."""
    meta = {k: invoice_meta[k] for k in (BILL_ID, CONFIG_ID, BILL_VERSION)}
    meta.update(line.metadata)
    meta[ITEM_DIGEST] = digest(_canonical(replace(line, metadata=meta)))
    return replace(line, metadata=meta)


def _skip_reason(
    settings: StripeDestinationConfig, mode: Mode, total: int, currency: str
) -> str | None:
    if not settings.skip_zero_total_invoices:
        return None
    if total == 0:
        return "the bill totals zero and skipZeroTotalInvoices is on"
    minimum = stripe_minimum_charge_minor(currency)
    if mode is Mode.INVOICE and total < minimum:
        return (
            f"the bill total {_money(total, currency)} is below Stripe's minimum charge "
            f"of {_money(minimum, currency)} and skipZeroTotalInvoices is on"
        )
    return None


def _canonical(line: PlannedLine) -> dict[str, object]:
    canonical: dict[str, object] = {
        "key": line.key,
        "description": line.description,
        "amount": line.amount,
        "product": line.product,
        "quantity": line.quantity,
        "unit": None if line.unit_amount_decimal is None else str(line.unit_amount_decimal),
        "period": None if line.period is None else [line.period.start, line.period.end],
        "metadata": dict(sorted(line.metadata.items())),
    }
    if line.quantity_decimal is not None:  # absent before sendDecimalQuantities: same digests
        canonical["quantity_decimal"] = str(line.quantity_decimal)
    return canonical


def digest(value: object) -> str:
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]
