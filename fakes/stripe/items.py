"""Invoice items (``/v1/invoiceitems``) and the bulk line endpoints of a draft invoice."""

from __future__ import annotations

from typing import Any

from .context import Ctx, Endpoint, paginate
from .errors import StripeError, invalid, not_editable
from .invoices import get_draft, missing_line
from .lines import (
    ITEM_PRICE_DATA,
    LINE_FIELDS,
    TAX_BEHAVIOR,
    apply_update,
    attach,
    build_item,
    check_capacity,
    detach,
)
from .money import check_currency
from .objects import refresh_totals, render_invoice
from .state import JSON
from .validation import EXPAND, Arr, Bool, Dec, Int, Loose, Metadata, Obj, Str, merge_metadata

ADD_LINE = Obj({**LINE_FIELDS, "invoice_item": Str()})
UPDATE_LINE = Obj({**LINE_FIELDS, "id": Str()}, required=("id",))
REMOVE_LINE = Obj(
    {"id": Str(), "behavior": Str(enum=("delete", "unassign"))}, required=("id", "behavior")
)


def _bulk(line: Obj) -> Obj:
    return Obj(
        {"lines": Arr(line), "invoice_metadata": Metadata(), "expand": EXPAND}, required=("lines",)
    )


_ITEM_FIELDS: dict[str, Any] = {
    **LINE_FIELDS,
    "price_data": ITEM_PRICE_DATA,
    "unit_amount_decimal": Dec(),
    "tax_behavior": TAX_BEHAVIOR,
    "tax_code": Loose(),
    "expand": EXPAND,
}
ITEM_CREATE = Obj(
    {
        **{k: v for k, v in _ITEM_FIELDS.items() if k != "tax_amounts"},
        "customer": Str(),
        "customer_account": Str(),
        "currency": Str(max_len=3),
        "invoice": Str(),
        "subscription": Str(),
    }
)
ITEM_UPDATE = Obj({k: v for k, v in _ITEM_FIELDS.items() if k != "tax_amounts"})
ITEM_LIST = Obj(
    {
        "limit": Int(min=1, max=100),
        "starting_after": Str(),
        "ending_before": Str(),
        "customer": Str(),
        "customer_account": Str(),
        "invoice": Str(),
        "pending": Bool(),
        "created": Loose(),
        "expand": EXPAND,
    }
)


def _invoice_metadata(inv: JSON, p: dict[str, Any]) -> dict[str, str] | None:
    if "invoice_metadata" not in p:
        return None
    return merge_metadata(inv["metadata"], p["invoice_metadata"], "invoice_metadata")


def _line_item(ctx: Ctx, inv: JSON, ident: str, param: str) -> str:
    for item_id in ctx.ns.invoice_lines.get(inv["id"], []):
        if ctx.ns.line_ids[item_id] == ident:
            return item_id
    raise missing_line(ident, param)


def add_lines(ctx: Ctx, p: dict[str, Any]) -> JSON:
    inv = get_draft(ctx, "add lines to")
    metadata = _invoice_metadata(inv, p)
    new_items: list[JSON] = []
    assigned: list[str] = []
    for i, line in enumerate(p["lines"]):
        prefix = f"lines[{i}]"
        if "invoice_item" in line:
            extra = sorted(set(line) - {"invoice_item"})
            if extra:
                raise invalid(
                    f"You may only specify one of these parameters: invoice_item, {extra[0]}.",
                    param=f"{prefix}[{extra[0]}]",
                    code="parameters_exclusive",
                )
            item = ctx.lookup(
                "invoice_items", line["invoice_item"], param=f"{prefix}[invoice_item]", status=400
            )
            if item["invoice"] is not None or item["customer"] != inv["customer"]:
                raise StripeError(
                    400,
                    f"The invoice item {item['id']} is not a pending invoice "
                    f"item of customer {inv['customer']}.",
                    param=f"{prefix}[invoice_item]",
                )
            if item["currency"] != inv["currency"]:
                raise StripeError(
                    400,
                    f"The currency of the invoice item ({item['currency']}) "
                    f"must match the currency of the invoice ({inv['currency']}).",
                    param=f"{prefix}[invoice_item]",
                )
            assigned.append(item["id"])
        else:
            new_items.append(
                build_item(
                    ctx,
                    line,
                    customer=inv["customer"],
                    currency=inv["currency"],
                    invoice=None,
                    prefix=prefix,
                )
            )
    check_capacity(ctx, inv, len(new_items) + len(assigned), "lines")
    for item in new_items:
        ctx.ns.invoice_items[item["id"]] = item
    attach(ctx, inv, [*[i["id"] for i in new_items], *assigned])
    if metadata is not None:
        inv["metadata"] = metadata
    return render_invoice(ctx.ns, inv)


def update_lines(ctx: Ctx, p: dict[str, Any]) -> JSON:
    inv = get_draft(ctx, "update lines on")
    metadata = _invoice_metadata(inv, p)
    updates: list[JSON] = []
    for i, line in enumerate(p["lines"]):
        prefix = f"lines[{i}]"
        item_id = _line_item(ctx, inv, line["id"], f"{prefix}[id]")
        changes = {k: v for k, v in line.items() if k != "id"}
        updates.append(
            apply_update(ctx, ctx.ns.invoice_items[item_id], changes, prefix, "line item")
        )
    for item in updates:
        ctx.ns.invoice_items[item["id"]] = item
    if metadata is not None:
        inv["metadata"] = metadata
    refresh_totals(ctx.ns, inv)
    return render_invoice(ctx.ns, inv)


def remove_lines(ctx: Ctx, p: dict[str, Any]) -> JSON:
    inv = get_draft(ctx, "remove lines from")
    metadata = _invoice_metadata(inv, p)
    targets = [
        (_line_item(ctx, inv, line["id"], f"lines[{i}][id]"), line["behavior"])
        for i, line in enumerate(p["lines"])
    ]
    for item_id, behavior in targets:
        if item_id in ctx.ns.invoice_lines[inv["id"]]:
            detach(ctx, inv, item_id, delete=behavior == "delete")
    if metadata is not None:
        inv["metadata"] = metadata
    return render_invoice(ctx.ns, inv)


def create_item(ctx: Ctx, p: dict[str, Any]) -> JSON:
    if "customer" not in p:
        raise invalid(
            "Missing required param: customer.", param="customer", code="parameter_missing"
        )
    customer = ctx.lookup("customers", p["customer"], param="customer", status=400)
    inv: JSON | None = None
    if "invoice" in p:
        inv = ctx.lookup("invoices", p["invoice"], param="invoice", status=400)
        if inv["status"] != "draft":
            raise not_editable(
                f"You can only add invoice items to draft invoices; invoice "
                f"{inv['id']} has a status of {inv['status']}.",
                param="invoice",
            )
        if inv["customer"] != customer["id"]:
            raise StripeError(
                400, f"The invoice {inv['id']} belongs to another customer.", param="invoice"
            )
    default = inv["currency"] if inv else customer["currency"] or ctx.config.default_currency
    currency = check_currency(p.get("currency") or default, "currency")
    if inv is not None and currency != inv["currency"]:
        raise StripeError(
            400,
            f"The currency of the invoice item ({currency}) must match the "
            f"currency of the invoice ({inv['currency']}).",
            param="currency",
        )
    item = build_item(
        ctx, p, customer=customer["id"], currency=currency, invoice=None, kind="invoice item"
    )
    if inv is not None:
        check_capacity(ctx, inv, 1, "invoice")
    ctx.ns.invoice_items[item["id"]] = item
    if inv is not None:
        attach(ctx, inv, [item["id"]])
    return dict(item)


def _item(ctx: Ctx) -> JSON:
    return ctx.lookup("invoice_items", ctx.match["id"], param="id", status=404)


def _editable_item(ctx: Ctx, action: str) -> tuple[JSON, JSON | None]:
    item = _item(ctx)
    inv = ctx.ns.invoices.get(item["invoice"]) if item["invoice"] else None
    if inv is not None and inv["status"] != "draft":
        raise not_editable(
            f"You can only {action} invoice items that are pending or on a draft "
            f"invoice; invoice {inv['id']} has a status of {inv['status']}."
        )
    return item, inv


def retrieve_item(ctx: Ctx, p: dict[str, Any]) -> JSON:
    return dict(_item(ctx))


def update_item(ctx: Ctx, p: dict[str, Any]) -> JSON:
    item, inv = _editable_item(ctx, "update")
    changes = {k: v for k, v in p.items() if k != "expand"}
    updated = apply_update(ctx, item, changes, "", "invoice item")
    ctx.ns.invoice_items[item["id"]] = updated
    if inv is not None:
        refresh_totals(ctx.ns, inv)
    return dict(updated)


def delete_item(ctx: Ctx, p: dict[str, Any]) -> JSON:
    item, inv = _editable_item(ctx, "delete")
    if inv is not None:
        detach(ctx, inv, item["id"], delete=True)
    else:
        del ctx.ns.invoice_items[item["id"]]
    return {"id": item["id"], "object": "invoiceitem", "deleted": True}


def list_items(ctx: Ctx, p: dict[str, Any]) -> JSON:
    def keep(i: JSON) -> bool:
        if "customer" in p and i["customer"] != p["customer"]:
            return False
        if "invoice" in p and i["invoice"] != p["invoice"]:
            return False
        return "pending" not in p or (i["invoice"] is None) == p["pending"]

    objs = [dict(i) for i in reversed(ctx.ns.invoice_items.values()) if keep(i)]
    return paginate("/v1/invoiceitems", objs, p)


ENDPOINTS = [
    Endpoint("POST", "/v1/invoices/{id}/add_lines", _bulk(ADD_LINE), add_lines),
    Endpoint("POST", "/v1/invoices/{id}/update_lines", _bulk(UPDATE_LINE), update_lines),
    Endpoint("POST", "/v1/invoices/{id}/remove_lines", _bulk(REMOVE_LINE), remove_lines),
    Endpoint("POST", "/v1/invoiceitems", ITEM_CREATE, create_item),
    Endpoint("GET", "/v1/invoiceitems", ITEM_LIST, list_items),
    Endpoint("GET", "/v1/invoiceitems/{id}", Obj({"expand": EXPAND}), retrieve_item),
    Endpoint("POST", "/v1/invoiceitems/{id}", ITEM_UPDATE, update_item),
    Endpoint("DELETE", "/v1/invoiceitems/{id}", Obj({}), delete_item),
]
