"""A plan -> the stripe SDK's typed request parameters (pure).

Decimals go out as `PlainDecimal`: the SDK form-encodes them with str(), which would write
1E-9 for a tiny unit amount, and Stripe refuses exponent notation."""

from __future__ import annotations

from decimal import Decimal

from stripe.params import (
    InvoiceAddLinesParamsLine,
    InvoiceAddLinesParamsLinePriceData,
    InvoiceCreateParams,
    InvoiceItemCreateParams,
    InvoiceItemCreateParamsPriceData,
    InvoiceUpdateParams,
)

from shared.money import plain_decimal

from .invoice_fields import LINES_DIGEST
from .lines import PlannedLine
from .mapping import StripeInvoicePlan


def create_invoice(plan: StripeInvoicePlan) -> InvoiceCreateParams:
    params: InvoiceCreateParams = {
        "customer": plan.customer_id,
        "currency": plan.currency,
        "collection_method": plan.collection_method.value,
        "auto_advance": plan.auto_advance,
        # Only the bill's lines: other pending items stay for the subscription invoice.
        "pending_invoice_items_behavior": "exclude",
        "metadata": _invoice_metadata(plan),
    }
    if plan.days_until_due is not None:
        params["days_until_due"] = plan.days_until_due
    if plan.due_date is not None:
        params["due_date"] = plan.due_date
    if plan.custom_fields:
        params["custom_fields"] = [{"name": f.name, "value": f.value} for f in plan.custom_fields]
    return params


def update_invoice(plan: StripeInvoicePlan) -> InvoiceUpdateParams:
    """Every field billsync owns, so a regenerated bill leaves no stale value behind."""
    params: InvoiceUpdateParams = {
        "collection_method": plan.collection_method.value,
        "auto_advance": plan.auto_advance,
        "metadata": _invoice_metadata(plan),
        "custom_fields": [{"name": f.name, "value": f.value} for f in plan.custom_fields] or "",
    }
    if plan.days_until_due is not None:
        params["days_until_due"] = plan.days_until_due
    if plan.due_date is not None:
        params["due_date"] = plan.due_date
    return params


def _invoice_metadata(plan: StripeInvoicePlan) -> dict[str, str]:
    meta = dict(plan.metadata)
    if not plan.lines:
        # No add_lines call will record the (empty) lines digest: record it here.
        meta[LINES_DIGEST] = plan.lines_digest
    return meta


def add_line(line: PlannedLine, currency: str) -> InvoiceAddLinesParamsLine:
    params: InvoiceAddLinesParamsLine = {
        "description": line.description,
        "metadata": dict(line.metadata),
    }
    if line.period is not None:
        params["period"] = {"start": line.period.start, "end": line.period.end}
    if line.is_price and line.product is not None:
        price: InvoiceAddLinesParamsLinePriceData = {
            "currency": currency,
            "product": line.product,
            "unit_amount_decimal": _unit(line),
        }
        params["price_data"] = price
        if line.quantity_decimal is not None:
            params["quantity_decimal"] = plain_decimal(line.quantity_decimal)
        else:
            params["quantity"] = line.quantity if line.quantity is not None else 1
    else:
        params["amount"] = line.amount
    return params


def _unit(line: PlannedLine) -> Decimal:
    unit = line.unit_amount_decimal if line.unit_amount_decimal is not None else Decimal(0)
    return plain_decimal(unit)


def invoice_item(line: PlannedLine, plan: StripeInvoicePlan) -> InvoiceItemCreateParams:
    params: InvoiceItemCreateParams = {
        "customer": plan.customer_id,
        "currency": plan.currency,
        "description": line.description,
        "metadata": dict(line.metadata),
    }
    if line.period is not None:
        params["period"] = {"start": line.period.start, "end": line.period.end}
    if line.is_price and line.product is not None:
        price: InvoiceItemCreateParamsPriceData = {
            "currency": plan.currency,
            "product": line.product,
            "unit_amount_decimal": _unit(line),
        }
        params["price_data"] = price
        if line.quantity_decimal is not None:
            params["quantity_decimal"] = plain_decimal(line.quantity_decimal)
        else:
            params["quantity"] = line.quantity if line.quantity is not None else 1
    else:
        params["amount"] = line.amount
    return params
