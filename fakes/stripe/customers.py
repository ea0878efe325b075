"""Customers: create, retrieve, list (plus seeding with chosen ids for tests)."""

from __future__ import annotations

from typing import Any

from .context import Ctx, Endpoint, paginate
from .objects import customer_object
from .state import JSON, Namespace, Store
from .validation import EXPAND, Int, Loose, Metadata, Obj, Str, merge_metadata

_LIST = {"limit": Int(min=1, max=100), "starting_after": Str(), "ending_before": Str()}

CREATE = Obj(
    {
        "email": Str(max_len=512),
        "name": Str(max_len=256),
        "description": Str(allow_empty=True),
        "metadata": Metadata(),
        "phone": Str(max_len=20),
        "expand": EXPAND,
        "address": Loose(),
        "invoice_prefix": Str(max_len=12),
        "invoice_settings": Loose(),
        "preferred_locales": Loose(),
        "shipping": Loose(),
        "tax_exempt": Str(enum=("exempt", "none", "reverse")),
    }
)


def _prefix(store: Store) -> str:
    return store.new_id("x", 8)[2:].upper()


def seed(
    store: Store,
    ns: Namespace,
    ident: str,
    *,
    currency: str | None = None,
    email: str | None = None,
    name: str | None = None,
    metadata: dict[str, str] | None = None,
    payment_fails: bool = False,
) -> JSON:
    customer = customer_object(
        ident,
        livemode=ns.livemode,
        created=store.now(),
        currency=currency,
        email=email,
        name=name,
        metadata=metadata,
        invoice_prefix=_prefix(store),
    )
    ns.customers[ident] = customer
    ns.customer_flags[ident] = {"payment_fails": payment_fails}
    ns.searchable_at[ident] = store.clock()
    return customer


def create(ctx: Ctx, p: dict[str, Any]) -> JSON:
    ident = ctx.store.new_id("cus", 14)
    customer = seed(ctx.store, ctx.ns, ident, email=p.get("email"), name=p.get("name"))
    customer["description"] = p.get("description")
    customer["metadata"] = merge_metadata({}, p.get("metadata", {}), "metadata")
    if "invoice_prefix" in p:
        customer["invoice_prefix"] = p["invoice_prefix"]
    if "phone" in p:
        customer["phone"] = p["phone"]
    ctx.emit("customer.created", customer)
    return customer


def retrieve(ctx: Ctx, p: dict[str, Any]) -> JSON:
    return ctx.lookup("customers", ctx.match["id"], param="id", status=404)


def list_(ctx: Ctx, p: dict[str, Any]) -> JSON:
    objs = [c for c in reversed(ctx.ns.customers.values()) if p.get("email") in (None, c["email"])]
    return paginate("/v1/customers", objs, p)


ENDPOINTS = [
    Endpoint("POST", "/v1/customers", CREATE, create),
    Endpoint("GET", "/v1/customers", Obj({**_LIST, "email": Str(), "expand": EXPAND}), list_),
    Endpoint("GET", "/v1/customers/{id}", Obj({"expand": EXPAND}), retrieve),
]
