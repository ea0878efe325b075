"""Invoices: create, retrieve, update, delete, list, search and line listing."""

from __future__ import annotations

import base64
from typing import Any

from . import search
from .context import Ctx, Endpoint, paginate
from .errors import StripeError, invalid, not_editable
from .lines import attach, check_capacity, require_draft
from .money import check_currency
from .objects import invoice_object, lines_list, render_invoice
from .state import JSON
from .validation import (
    EXPAND,
    UNSET,
    Arr,
    Bool,
    Int,
    Loose,
    Metadata,
    Obj,
    Str,
    merge_metadata,
)

COLLECTION = Str(enum=("charge_automatically", "send_invoice"))
CUSTOM_FIELDS = Arr(
    Obj({"name": Str(max_len=40), "value": Str(max_len=140)}, required=("name", "value")),
    max_items=4,
    nullable=True,
)
_LOOSE = (
    "account_tax_ids application_fee_amount automatic_tax automatically_finalizes_at "
    "customer_account default_payment_method default_source default_tax_rates discounts "
    "effective_at issuer number on_behalf_of payment_settings rendering shipping_cost "
    "shipping_details transfer_data"
).split()
_EDITABLE = {
    "auto_advance": Bool(),
    "collection_method": COLLECTION,
    "custom_fields": CUSTOM_FIELDS,
    "days_until_due": Int(min=0, max=36500),
    "description": Str(max_len=1500, allow_empty=True),
    "due_date": Int(min=0),
    "expand": EXPAND,
    "footer": Str(max_len=5000, allow_empty=True),
    "metadata": Metadata(),
    "statement_descriptor": Str(max_len=22, allow_empty=True),
    **{name: Loose() for name in _LOOSE},
}
CREATE = Obj(
    {
        **_EDITABLE,
        "customer": Str(),
        "currency": Str(max_len=3),
        "from_invoice": Loose(),
        "pending_invoice_items_behavior": Str(enum=("exclude", "include")),
        "subscription": Str(),
    }
)
UPDATE = Obj(_EDITABLE)
# What Stripe still lets you change once an invoice is finalized.
_AFTER_FINALIZE = {
    "open": {"metadata", "description", "footer", "custom_fields", "auto_advance", "expand"},
    "uncollectible": {"metadata", "description", "footer", "auto_advance", "expand"},
}
_LIST_PAGE = {"limit": Int(min=1, max=100), "starting_after": Str(), "ending_before": Str()}
LIST = Obj(
    {
        **_LIST_PAGE,
        "customer": Str(),
        "customer_account": Str(),
        "status": Str(enum=("draft", "open", "paid", "uncollectible", "void")),
        "collection_method": COLLECTION,
        "subscription": Str(),
        "created": Loose(),
        "due_date": Loose(),
        "expand": EXPAND,
    }
)
SEARCH = Obj(
    {"query": Str(), "limit": Int(min=1, max=100), "page": Str(), "expand": EXPAND},
    required=("query",),
)
DAY = 86400


def _check_terms(p: dict[str, Any], method: str) -> None:
    if "days_until_due" in p and "due_date" in p:
        raise invalid(
            "You may only specify one of these parameters: days_until_due, due_date.",
            param="due_date",
            code="parameters_exclusive",
        )
    if method != "send_invoice":
        for key in ("days_until_due", "due_date"):
            if key in p and p[key] is not UNSET:
                raise invalid(
                    f"You can only set `{key}` on invoices with `collection_method` of "
                    "`send_invoice`.",
                    param=key,
                )


def _apply(inv: JSON, p: dict[str, Any], now: int) -> None:
    for key in ("auto_advance", "collection_method", "statement_descriptor"):
        if key in p:
            inv[key] = p[key]
    for key in ("description", "footer"):
        if key in p:
            inv[key] = p[key] or None
    if "custom_fields" in p:
        fields = p["custom_fields"]
        inv["custom_fields"] = None if fields is UNSET or not fields else fields
    if "metadata" in p:
        inv["metadata"] = merge_metadata(inv["metadata"], p["metadata"], "metadata")
    if inv["collection_method"] == "charge_automatically":
        inv["due_date"] = None
    elif "due_date" in p:
        inv["due_date"] = None if p["due_date"] is UNSET else p["due_date"]
    elif "days_until_due" in p:
        inv["due_date"] = inv["created"] + p["days_until_due"] * DAY
    elif inv["due_date"] is None:
        inv["due_date"] = now + 30 * DAY  # Stripe's default payment terms


def create(ctx: Ctx, p: dict[str, Any]) -> JSON:
    if "customer" not in p:
        raise invalid(
            "Missing required param: customer.", param="customer", code="parameter_missing"
        )
    method = p.get("collection_method", "charge_automatically")
    _check_terms(p, method)
    customer = ctx.lookup("customers", p["customer"], param="customer", status=400)
    currency = check_currency(
        p.get("currency") or customer["currency"] or ctx.config.default_currency, "currency"
    )
    inv = invoice_object(
        ctx.store.new_id("in"), customer=customer, livemode=ctx.ns.livemode, created=ctx.now
    )
    inv["currency"] = currency
    _apply(inv, p, ctx.now)
    pending: list[str] = []
    if p.get("pending_invoice_items_behavior") == "include":
        pending = [
            i["id"]
            for i in ctx.ns.invoice_items.values()
            if i["customer"] == customer["id"]
            and i["invoice"] is None
            and i["currency"] == currency
        ]
        check_capacity(ctx, inv, len(pending), "pending_invoice_items_behavior")
    ctx.ns.invoices[inv["id"]] = inv
    ctx.ns.invoice_lines[inv["id"]] = []
    ctx.ns.searchable_at[inv["id"]] = ctx.store.clock() + ctx.config.search_lag_seconds
    attach(ctx, inv, pending)
    ctx.emit("invoice.created", render_invoice(ctx.ns, inv))
    return render_invoice(ctx.ns, inv)


def get(ctx: Ctx) -> JSON:
    return ctx.lookup("invoices", ctx.match["id"], param="invoice", status=404)


def retrieve(ctx: Ctx, p: dict[str, Any]) -> JSON:
    return render_invoice(ctx.ns, get(ctx))


def update(ctx: Ctx, p: dict[str, Any]) -> JSON:
    inv = get(ctx)
    if inv["status"] != "draft":
        allowed = _AFTER_FINALIZE.get(inv["status"], {"metadata", "expand"})
        for key in p:
            if key not in allowed:
                raise not_editable(
                    f"Finalized invoices can't be updated in this way: `{key}` can only be "
                    f"changed on a draft invoice (invoice {inv['id']} is {inv['status']}).",
                    param=key,
                )
    method: str = p.get("collection_method") or inv["collection_method"]
    _check_terms(p, method)
    updated = dict(inv)
    _apply(updated, p, ctx.now)
    inv.update(updated)
    return render_invoice(ctx.ns, inv)


def delete(ctx: Ctx, p: dict[str, Any]) -> JSON:
    inv = get(ctx)
    if inv["status"] != "draft":
        raise not_editable("You can only delete draft invoices.")
    ns = ctx.ns
    for item_id in ns.invoice_lines.pop(inv["id"], []):
        ns.invoice_items.pop(item_id, None)
        ns.line_ids.pop(item_id, None)
    del ns.invoices[inv["id"]]
    ns.searchable_at.pop(inv["id"], None)
    ctx.emit("invoice.deleted", render_invoice(ns, inv))
    return {"id": inv["id"], "object": "invoice", "deleted": True}


def list_(ctx: Ctx, p: dict[str, Any]) -> JSON:
    objs = [
        i
        for i in reversed(ctx.ns.invoices.values())
        if all(p.get(k) in (None, i[k]) for k in ("customer", "status", "collection_method"))
    ]
    page = paginate("/v1/invoices", objs, p)
    page["data"] = [render_invoice(ctx.ns, i) for i in page["data"]]
    return page


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def search_(ctx: Ctx, p: dict[str, Any]) -> JSON:
    predicate = search.parse(p["query"], search.INVOICE_FIELDS, "invoices")
    offset = 0
    if "page" in p:
        try:
            offset = int(base64.urlsafe_b64decode(p["page"].encode()).decode().split(":")[1])
        except (ValueError, IndexError):
            raise invalid(f"Invalid page: {p['page']}", param="page") from None
    now = ctx.store.clock()
    hits = [
        i
        for i in reversed(ctx.ns.invoices.values())
        if ctx.ns.searchable_at.get(i["id"], 0) <= now and predicate(i)
    ]
    limit = p.get("limit", 10)
    page = hits[offset : offset + limit]
    more = offset + limit < len(hits)
    return {
        "object": "search_result",
        "url": "/v1/invoices/search",
        "has_more": more,
        "next_page": _page_token(offset + limit) if more else None,
        "data": [render_invoice(ctx.ns, i) for i in page],
    }


def lines(ctx: Ctx, p: dict[str, Any]) -> JSON:
    inv = get(ctx)
    item_ids = ctx.ns.invoice_lines.get(inv["id"], [])
    fake_objs = [{"id": ctx.ns.line_ids[i], "item": i} for i in item_ids]
    page = paginate(f"/v1/invoices/{inv['id']}/lines", fake_objs, p)
    return lines_list(ctx.ns, inv["id"], [o["item"] for o in page["data"]], page["has_more"])


def get_draft(ctx: Ctx, action: str) -> JSON:
    inv = get(ctx)
    require_draft(inv, action)
    return inv


def missing_line(ident: str, param: str) -> StripeError:
    return StripeError(
        400, f"No such line item: '{ident}'", code="resource_missing", param=param, stage="exec"
    )


ENDPOINTS = [
    Endpoint("POST", "/v1/invoices", CREATE, create),
    Endpoint("GET", "/v1/invoices", LIST, list_),
    Endpoint("GET", "/v1/invoices/search", SEARCH, search_),
    Endpoint("GET", "/v1/invoices/{id}", Obj({"expand": EXPAND}), retrieve),
    Endpoint("POST", "/v1/invoices/{id}", UPDATE, update),
    Endpoint("DELETE", "/v1/invoices/{id}", Obj({}), delete),
    Endpoint("GET", "/v1/invoices/{id}/lines", Obj({**_LIST_PAGE, "expand": EXPAND}), lines),
]
