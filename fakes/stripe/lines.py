"""Invoice items and invoice lines: pricing, amounts and the bulk line endpoints."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .context import Ctx
from .errors import StripeError, invalid, not_editable
from .money import check_currency
from .objects import decimal_str, money, refresh_totals
from .state import JSON
from .validation import (
    PERIOD,
    Bool,
    Dec,
    Int,
    Loose,
    Metadata,
    Obj,
    Str,
    merge_metadata,
)

TAX_BEHAVIOR = Str(enum=("exclusive", "inclusive", "unspecified"))
PRODUCT_DATA = Obj(
    {
        "name": Str(),
        "description": Str(),
        "images": Loose(),
        "metadata": Metadata(),
        "tax_code": Str(),
        "tax_details": Loose(),
        "unit_label": Str(max_len=12),
    },
    required=("name",),
)
_PRICE_DATA_FIELDS: dict[str, Any] = {
    "currency": Str(max_len=3),
    "product": Str(),
    "tax_behavior": TAX_BEHAVIOR,
    "unit_amount": Int(min=0),
    "unit_amount_decimal": Dec(),
}
LINE_PRICE_DATA = Obj({**_PRICE_DATA_FIELDS, "product_data": PRODUCT_DATA}, required=("currency",))
ITEM_PRICE_DATA = Obj(_PRICE_DATA_FIELDS, required=("currency", "product"))
PRICING = Obj({"price": Str()})

# Parameters shared by add_lines / update_lines lines and invoice items.
LINE_FIELDS: dict[str, Any] = {
    "amount": Int(),
    "description": Str(allow_empty=True),
    "discountable": Bool(),
    "discounts": Loose(),
    "metadata": Metadata(),
    "period": PERIOD,
    "price_data": LINE_PRICE_DATA,
    "pricing": PRICING,
    "quantity": Int(min=0),
    "quantity_decimal": Dec(),
    "tax_amounts": Loose(),
    "tax_rates": Loose(),
}
_PRICING_KEYS = ("amount", "price_data", "pricing", "unit_amount_decimal")


def _sub(prefix: str, *keys: str) -> str:
    path = prefix
    for key in keys:
        path = f"{path}[{key}]" if path else key
    return path


def _exclusive(prefix: str, first: str, second: str) -> StripeError:
    return invalid(
        f"You may only specify one of these parameters: {first}, {second}.",
        param=_sub(prefix, second),
        code="parameters_exclusive",
    )


def _mismatch(kind: str, given: str, expected: str, param: str) -> StripeError:
    owner = "the invoice" if kind == "line item" else "the invoice item"
    return StripeError(
        400,
        f"The currency of the {kind} ({given}) must match the currency of {owner} ({expected}).",
        param=param,
        stage="exec",
    )


def price(ctx: Ctx, p: dict[str, Any], currency: str, prefix: str, kind: str) -> JSON:
    """Pricing fields (amount, quantity, pricing) of an item from line parameters."""
    given = [k for k in _PRICING_KEYS if k in p]
    if len(given) > 1:
        raise _exclusive(prefix, given[0], given[1])
    if "quantity" in p and "quantity_decimal" in p:
        raise _exclusive(prefix, "quantity", "quantity_decimal")
    if not given:
        raise invalid(
            f"Missing required param: {_sub(prefix, 'amount')}.",
            param=_sub(prefix, "amount"),
            code="parameter_missing",
        )
    product: str | None = None
    if given[0] == "amount":
        if "quantity" in p or "quantity_decimal" in p:
            raise _exclusive(prefix, "amount", "quantity")
        unit, quantity = Decimal(p["amount"]), Decimal(1)
    else:
        quantity = Decimal(p.get("quantity", p.get("quantity_decimal", 1)))
        if given[0] == "pricing":
            price_id = p["pricing"].get("price", "")
            raise StripeError(
                400,
                f"No such price: '{price_id}'",
                code="resource_missing",
                param=_sub(prefix, "pricing", "price"),
                stage="exec",
            )
        if given[0] == "unit_amount_decimal":
            unit = p["unit_amount_decimal"]
        else:
            pd = p["price_data"]
            if "unit_amount" in pd and "unit_amount_decimal" in pd:
                raise _exclusive(_sub(prefix, "price_data"), "unit_amount", "unit_amount_decimal")
            if "unit_amount" not in pd and "unit_amount_decimal" not in pd:
                param = _sub(prefix, "price_data", "unit_amount")
                raise invalid(
                    f"Missing required param: {param}.", param=param, code="parameter_missing"
                )
            if "product" in pd and "product_data" in pd:
                raise _exclusive(_sub(prefix, "price_data"), "product", "product_data")
            if "product" not in pd and "product_data" not in pd:
                param = _sub(prefix, "price_data", "product")
                raise invalid(
                    f"Missing required param: {param}.", param=param, code="parameter_missing"
                )
            param = _sub(prefix, "price_data", "currency")
            if check_currency(pd["currency"], param) != currency:
                raise _mismatch(kind, pd["currency"].lower(), currency, param)
            unit = Decimal(
                pd["unit_amount_decimal"] if "unit_amount_decimal" in pd else pd["unit_amount"]
            )
            product = pd.get("product")
    amount = money(quantity, unit)
    integral = quantity == quantity.to_integral_value()
    return {
        "amount": amount,
        "quantity": int(quantity) if integral else None,
        "quantity_decimal": decimal_str(quantity),
        "pricing": {
            "type": "price_details",
            "price_details": {
                "price": ctx.store.new_id("price"),
                "product": product or ctx.store.new_id("prod", 14),
            },
            "unit_amount_decimal": decimal_str(unit),
        },
    }


def build_item(
    ctx: Ctx,
    p: dict[str, Any],
    *,
    customer: str,
    currency: str,
    invoice: str | None,
    prefix: str = "",
    kind: str = "line item",
) -> JSON:
    """A new invoice item (not yet stored) from line or invoice item parameters."""
    priced = price(ctx, p, currency, prefix, kind)
    period = p.get("period") or {"start": ctx.now, "end": ctx.now}
    if period["end"] < period["start"]:
        raise invalid(
            "The period end must be greater than or equal to the period start.",
            param=_sub(prefix, "period", "end"),
        )
    return {
        "id": ctx.store.new_id("ii"),
        "object": "invoiceitem",
        "amount": priced["amount"],
        "currency": currency,
        "customer": customer,
        "date": ctx.now,
        "description": p.get("description"),
        "discountable": p.get("discountable", priced["amount"] >= 0),
        "discounts": [],
        "invoice": invoice,
        "livemode": ctx.ns.livemode,
        "metadata": merge_metadata({}, p.get("metadata", {}), _sub(prefix, "metadata")),
        "net_amount": priced["amount"],
        "parent": None,
        "period": period,
        "pricing": priced["pricing"],
        "proration": False,
        "quantity": priced["quantity"],
        "quantity_decimal": priced["quantity_decimal"],
        "tax_rates": [],
        "test_clock": None,
    }


def apply_update(ctx: Ctx, item: JSON, p: dict[str, Any], prefix: str, kind: str) -> JSON:
    """The item with an update applied (returned as a new dict; nothing stored yet)."""
    updated = dict(item)
    if any(k in p for k in (*_PRICING_KEYS, "quantity", "quantity_decimal")):
        merged = dict(p)
        if not any(k in p for k in _PRICING_KEYS):
            merged["unit_amount_decimal"] = Decimal(item["pricing"]["unit_amount_decimal"])
        priced = price(ctx, merged, item["currency"], prefix, kind)
        updated.update(
            amount=priced["amount"],
            net_amount=priced["amount"],
            quantity=priced["quantity"],
            quantity_decimal=priced["quantity_decimal"],
            pricing=priced["pricing"],
        )
    for key in ("description", "discountable", "period"):
        if key in p:
            updated[key] = p[key]
    if "metadata" in p:
        updated["metadata"] = merge_metadata(
            item["metadata"], p["metadata"], _sub(prefix, "metadata")
        )
    return updated


def attach(ctx: Ctx, invoice: JSON, item_ids: list[str]) -> None:
    ns = ctx.ns
    for item_id in item_ids:
        ns.invoice_items[item_id]["invoice"] = invoice["id"]
        ns.line_ids[item_id] = ctx.store.new_id("il")
        ns.invoice_lines.setdefault(invoice["id"], []).append(item_id)
    refresh_totals(ns, invoice)


def detach(ctx: Ctx, invoice: JSON, item_id: str, *, delete: bool) -> None:
    ns = ctx.ns
    ns.invoice_lines[invoice["id"]].remove(item_id)
    ns.line_ids.pop(item_id, None)
    if delete:
        del ns.invoice_items[item_id]
    else:
        ns.invoice_items[item_id]["invoice"] = None
    refresh_totals(ns, invoice)


def check_capacity(ctx: Ctx, invoice: JSON, adding: int, param: str) -> None:
    count = len(ctx.ns.invoice_lines.get(invoice["id"], [])) + adding
    limit = ctx.config.max_lines_per_invoice
    if count > limit:
        raise StripeError(
            400,
            f"Invoices can have at most {limit} line items, but this request would give "
            f"invoice {invoice['id']} {count} line items.",
            param=param,
            stage="exec",
        )


def require_draft(invoice: JSON, action: str, param: str | None = None) -> None:
    if invoice["status"] != "draft":
        raise not_editable(
            f"You can only {action} draft invoices; invoice {invoice['id']} has a status of "
            f"{invoice['status']}.",
            param=param,
        )
