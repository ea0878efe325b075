"""Stripe object shapes (API version 2025+ "basil" and later) and invoice arithmetic."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .state import JSON, Namespace


def money(quantity: Decimal, unit_amount_decimal: Decimal) -> int:
    """Quantity x unit amount (minor units), rounded half up to an integer as Stripe does."""
    return int((quantity * unit_amount_decimal).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def decimal_str(value: Decimal) -> str:
    """Stripe's decimal strings: no exponent, no trailing zeros (``"150.5"``, ``"3"``)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def customer_object(
    ident: str,
    *,
    livemode: bool,
    created: int,
    currency: str | None = None,
    email: str | None = None,
    name: str | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    invoice_prefix: str,
) -> JSON:
    return {
        "id": ident,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created,
        "currency": currency,
        "default_source": None,
        "delinquent": False,
        "description": description,
        "discount": None,
        "email": email,
        "invoice_prefix": invoice_prefix,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "name": name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def invoice_object(ident: str, *, customer: JSON, livemode: bool, created: int) -> JSON:
    return {
        "id": ident,
        "object": "invoice",
        "account_country": "US",
        "account_name": "billsync fake",
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": False,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "automatically_finalizes_at": None,
        "billing_reason": "manual",
        "collection_method": "charge_automatically",
        "created": created,
        "currency": "usd",
        "custom_fields": None,
        "customer": customer["id"],
        "customer_address": customer.get("address"),
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "customer_phone": customer.get("phone"),
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "livemode": livemode,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": created,
        "period_start": created,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }


def render_line(ns: Namespace, item_id: str) -> JSON:
    item = ns.invoice_items[item_id]
    return {
        "id": ns.line_ids[item_id],
        "object": "line_item",
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item["description"],
        "discount_amounts": [],
        "discountable": item["discountable"],
        "discounts": [],
        "invoice": item["invoice"],
        "livemode": item["livemode"],
        "metadata": dict(item["metadata"]),
        "parent": {
            "type": "invoice_item_details",
            "invoice_item_details": {
                "invoice_item": item_id,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": None,
            },
            "subscription_item_details": None,
        },
        "period": dict(item["period"]),
        "pretax_credit_amounts": [],
        "pricing": _copy(item["pricing"]),
        "quantity": item["quantity"],
        "quantity_decimal": item["quantity_decimal"],
        "subscription": None,
        "subtotal": item["amount"],
        "taxes": [],
    }


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def lines_list(ns: Namespace, invoice_id: str, item_ids: list[str], has_more: bool) -> JSON:
    return {
        "object": "list",
        "data": [render_line(ns, i) for i in item_ids],
        "has_more": has_more,
        "total_count": len(ns.invoice_lines.get(invoice_id, [])),
        "url": f"/v1/invoices/{invoice_id}/lines",
    }


def render_invoice(ns: Namespace, invoice: JSON, *, all_lines: bool = False) -> JSON:
    """The invoice as the API returns it: ``lines`` embeds the first 10 lines, like Stripe."""
    out: JSON = _copy(invoice)
    items = ns.invoice_lines.get(invoice["id"], [])
    shown = items if all_lines else items[:10]
    out["lines"] = lines_list(ns, invoice["id"], shown, len(shown) < len(items))
    return out


def refresh_totals(ns: Namespace, invoice: JSON) -> None:
    """Recompute the integer totals of a draft from its lines (no tax, no discounts)."""
    subtotal = sum(ns.invoice_items[i]["amount"] for i in ns.invoice_lines.get(invoice["id"], []))
    invoice["subtotal"] = subtotal
    invoice["subtotal_excluding_tax"] = subtotal
    invoice["total"] = subtotal
    invoice["total_excluding_tax"] = subtotal
    due = max(subtotal + invoice["starting_balance"], 0)
    invoice["amount_due"] = due
    invoice["amount_remaining"] = max(due - invoice["amount_paid"], 0)


def deleted_object(ident: str, kind: str) -> JSON:
    return {"id": ident, "object": kind, "deleted": True}


def list_object(url: str, data: list[JSON], has_more: bool) -> JSON:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}
