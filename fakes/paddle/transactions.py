"""Transactions: create, update, read, list; the rules Paddle's OpenAPI document cannot say.

- `collection_mode: manual` needs `billing_details` with `payment_terms`, a customer with a
  name, an address of that customer, and a currency of USD, EUR or GBP.
- 1-100 items; an item's quantity within its price's quantity range (default 1-100).
- `unit_price.amount` is an integer string of minor units in the transaction's currency.
- `draft` (something missing) and `ready` (complete) are editable; `billed` issues the
  invoice and the transaction is immutable from then on, as are paid, completed, canceled.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from .errors import PaddleError, bad_request, invalid, not_found
from .state import JSON, Store, new_id

MANUAL_CURRENCIES = ("USD", "EUR", "GBP")
EDITABLE = ("draft", "ready")
MAX_ITEMS = 100
DEFAULT_QUANTITY = {"minimum": 1, "maximum": 100}
_AMOUNT = re.compile(r"^(0|[1-9]\d*)$")
_WRITABLE = (
    "status",
    "customer_id",
    "address_id",
    "business_id",
    "custom_data",
    "currency_code",
    "collection_mode",
    "discount_id",
    "billing_details",
    "billing_period",
    "items",
)


def _price(store: Store, item: JSON, currency: str | None, where: str) -> JSON:
    price = item.get("price")
    if price is None:
        raise bad_request(
            "not_found", "Catalog prices are not held by the local Paddle.", f"{where}.price_id"
        )
    product_id = price.get("product_id")
    if product_id is not None:
        product = store.products.get(product_id)
        if product is None:
            raise bad_request(
                "not_found", f"Product {product_id} not found.", f"{where}.price.product_id"
            )
    else:
        inline = price["product"]
        product = {
            "id": new_id("pro"),
            "name": inline["name"],
            "tax_category": inline["tax_category"],
            "custom_data": inline.get("custom_data"),
            "status": "active",
        }
    quantity = price.get("quantity") or dict(DEFAULT_QUANTITY)
    if quantity["minimum"] > quantity["maximum"]:
        raise bad_request(
            "invalid_field", "minimum must not exceed maximum", f"{where}.price.quantity"
        )
    amount = price["unit_price"]["amount"]
    if not _AMOUNT.match(amount):
        raise bad_request(
            "invalid_field",
            "amount must be a non-negative integer string of the lowest denomination",
            f"{where}.price.unit_price.amount",
        )
    if currency is not None and price["unit_price"]["currency_code"] != currency:
        raise bad_request(
            "transaction_price_different_currency",
            f"unit_price.currency_code must match the transaction's currency {currency}",
            f"{where}.price.unit_price.currency_code",
        )
    if not quantity["minimum"] <= item["quantity"] <= quantity["maximum"]:
        raise bad_request(
            "transaction_item_quantity_out_of_range",
            f"quantity {item['quantity']} is outside the price's quantity range "
            f"{quantity['minimum']}-{quantity['maximum']}",
            f"{where}.quantity",
        )
    return {
        "id": new_id("pri"),
        "description": price["description"],
        "name": price.get("name"),
        "type": "custom",
        "product_id": product["id"],
        "billing_cycle": price.get("billing_cycle"),
        "trial_period": price.get("trial_period"),
        "tax_mode": price.get("tax_mode", "account_setting"),
        "unit_price": dict(price["unit_price"]),
        "unit_price_overrides": price.get("unit_price_overrides", []),
        "custom_data": price.get("custom_data"),
        "quantity": dict(quantity),
        "status": "active",
        "_product": product,
    }


def _complete(store: Store, txn: JSON) -> list[tuple[str, str]]:
    """What a manually collected transaction still lacks (empty: it can be `ready`)."""
    missing: list[tuple[str, str]] = []
    customer = store.customers.get(txn["customer_id"] or "")
    if customer is None:
        missing.append(("customer_id", "manual collection needs a customer"))
    elif not customer.get("name"):
        missing.append(("customer_id", "manual collection needs a customer with a name"))
    if txn["address_id"] is None:
        missing.append(("address_id", "manual collection needs an address"))
    if not (txn["billing_details"] or {}).get("payment_terms"):
        missing.append(("billing_details.payment_terms", "manual collection needs payment terms"))
    return missing


def _check_links(store: Store, txn: JSON) -> None:
    customer_id = txn["customer_id"]
    if customer_id is not None and customer_id not in store.customers:
        raise bad_request("not_found", f"Customer {customer_id} not found.", "customer_id")
    for field, table in (("address_id", store.addresses), ("business_id", store.businesses)):
        ident = txn[field]
        if ident is None:
            continue
        owned = table.get(ident)
        if owned is None or owned["customer_id"] != customer_id:
            raise bad_request(
                "not_found", f"{ident} is not an entity of customer {customer_id}.", field
            )
        if owned.get("status") != "active":
            raise bad_request("invalid_field", f"{ident} is archived.", field)


def _apply(store: Store, txn: JSON, body: JSON) -> None:
    """Merge a create/update body into `txn` and enforce the rules (raises PaddleError)."""
    for key in _WRITABLE:
        if key in body and key != "items" and key != "status":
            txn[key] = body[key]
    manual = txn["collection_mode"] == "manual"
    if manual and txn["currency_code"] not in MANUAL_CURRENCIES:
        raise bad_request(
            "transaction_invalid_currency_for_manual_collection",
            f"manual collection supports {', '.join(MANUAL_CURRENCIES)}, not "
            f"{txn['currency_code']}",
            "currency_code",
        )
    if "items" in body:
        items = body["items"]
        if not 1 <= len(items) <= MAX_ITEMS:
            raise bad_request(
                "invalid_field", f"a transaction has 1-{MAX_ITEMS} items, not {len(items)}", "items"
            )
        prices = [
            _price(store, item, txn["currency_code"], f"items[{i}]") for i, item in enumerate(items)
        ]
        txn["items"] = [
            {"price": price, "quantity": item["quantity"]}
            for price, item in zip(prices, items, strict=True)
        ]
    else:
        for i, item in enumerate(txn["items"]):  # a currency change must still fit them
            code = item["price"]["unit_price"]["currency_code"]
            if txn["currency_code"] is not None and code != txn["currency_code"]:
                raise bad_request(
                    "transaction_price_different_currency",
                    f"unit_price.currency_code must match the transaction's currency "
                    f"{txn['currency_code']}",
                    f"items[{i}].price.unit_price.currency_code",
                )
    if not manual and txn["billing_details"] is not None:
        raise bad_request(
            "transaction_billing_details_must_be_null",
            "billing_details is only for manually collected transactions",
            "billing_details",
        )
    _check_links(store, txn)
    missing = _complete(store, txn) if manual else []
    txn["status"] = "ready" if not missing and txn["customer_id"] else "draft"
    wanted = body.get("status")
    if wanted == "billed":
        if manual and missing:
            raise invalid(missing)
        if txn["status"] != "ready":
            raise bad_request(
                "transaction_not_ready", "only a ready transaction can be billed", "status"
            )
        store.invoice_seq += 1
        txn["status"] = "billed"
        txn["billed_at"] = store.timestamp()
        txn["invoice_number"] = f"{store.invoice_seq:06d}"
        txn["invoice_id"] = new_id("inv")
    elif wanted == "canceled":
        txn["status"] = "canceled"
    elif wanted is not None and wanted not in EDITABLE:
        raise bad_request("invalid_field", f"status {wanted} cannot be set", "status")


def create(store: Store, body: JSON) -> JSON:
    now = store.timestamp()
    txn: JSON = {
        "id": new_id("txn"),
        "status": "draft",
        "customer_id": None,
        "address_id": None,
        "business_id": None,
        "custom_data": None,
        "origin": "api",
        "collection_mode": "automatic",
        "subscription_id": None,
        "invoice_id": None,
        "invoice_number": None,
        "billing_details": None,
        "billing_period": None,
        "currency_code": None,
        "discount_id": None,
        "created_at": now,
        "updated_at": now,
        "billed_at": None,
        "items": [],
    }
    _apply(store, txn, body)
    store.transactions[txn["id"]] = txn
    return render(txn)


def update(store: Store, txn_id: str, body: JSON) -> JSON:
    txn = store.transactions.get(txn_id)
    if txn is None:
        raise not_found("Transaction", txn_id)
    if txn["status"] not in EDITABLE:
        raise PaddleError(
            400,
            "transaction_immutable",
            f"Transaction {txn_id} is {txn['status']} and can no longer be changed.",
        )
    draft = {**txn, "items": list(txn["items"])}
    _apply(store, draft, body)  # all or nothing: a refused update changes nothing
    draft["updated_at"] = store.timestamp()
    store.transactions[txn_id] = draft
    return render(draft)


def get(store: Store, txn_id: str) -> JSON:
    txn = store.transactions.get(txn_id)
    if txn is None:
        raise not_found("Transaction", txn_id)
    return render(txn)


def _money(amount: Decimal) -> str:
    return str(int(amount))


def render(txn: JSON) -> JSON:
    """The transaction as Paddle answers it, with computed totals (no tax here)."""
    items: list[JSON] = []
    lines: list[JSON] = []
    subtotal = Decimal(0)
    for item in txn["items"]:
        price = {k: v for k, v in item["price"].items() if not k.startswith("_")}
        product = item["price"]["_product"]
        amount = Decimal(price["unit_price"]["amount"]) * item["quantity"]
        subtotal += amount
        items.append({"price": price, "quantity": item["quantity"]})
        lines.append(
            {
                "id": f"txnitm_{price['id'][4:]}",
                "price_id": price["id"],
                "quantity": item["quantity"],
                "unit_totals": {
                    "subtotal": price["unit_price"]["amount"],
                    "discount": "0",
                    "tax": "0",
                    "total": price["unit_price"]["amount"],
                },
                "totals": {
                    "subtotal": _money(amount),
                    "discount": "0",
                    "tax": "0",
                    "total": _money(amount),
                },
                "product": dict(product),
            }
        )
    totals: dict[str, Any] = {
        "subtotal": _money(subtotal),
        "discount": "0",
        "tax": "0",
        "total": _money(subtotal),
        "credit": "0",
        "balance": _money(subtotal),
        "grand_total": _money(subtotal),
        "fee": None,
        "earnings": None,
        "currency_code": txn["currency_code"],
    }
    checkout = None
    if txn["status"] in EDITABLE or txn["status"] == "billed":
        checkout = {"url": f"https://localhost/checkout?_ptxn={txn['id']}"}
    return {
        **{k: v for k, v in txn.items() if k != "items"},
        "items": items,
        "details": {"totals": totals, "line_items": lines},
        "payments": [],
        "checkout": checkout,
    }
