"""Small builders for contracts in tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from shared.contracts import Account, Bill, IntegrationConfig, LineItem, parse_config


def account(id: str = "acc-1", **fields: Any) -> Account:
    data: dict[str, Any] = {
        "id": id,
        "accountName": f"Name {id}",
        "currency": "USD",
        "address": {"country": "US"},
        "customFields": {"country": "US"},
    }
    data.update(fields)
    return Account.model_validate(data)


def line(id: str, kind: str = "USAGE", subtotal: str = "10.00", **fields: Any) -> LineItem:
    data: dict[str, Any] = {
        "id": id,
        "lineItemType": kind,
        "quantity": "1",
        "subtotal": subtotal,
        "description": id,
    }
    data.update(fields)
    return LineItem.model_validate(data)


def bill(
    id: str = "bill-1",
    account_id: str = "acc-1",
    version: int = 1,
    lines: list[LineItem] | None = None,
    embed: Account | None = None,
    **fields: Any,
) -> Bill:
    items = lines if lines is not None else [line("li-1"), line("li-2", "STANDING_CHARGE", "5")]
    total = sum((i.subtotal for i in items), Decimal(0))
    return Bill(
        id=id,
        version=version,
        account_id=account_id,
        currency="USD",
        bill_total=total,
        line_items=items,
        account=embed,
        **fields,
    )


def config(
    id: str = "cfg-1",
    destination: str = "STRIPE_TEST",
    version: int = 1,
    entity: dict[str, Any] | None = None,
    dest: dict[str, Any] | None = None,
    **fields: Any,
) -> IntegrationConfig:
    data: dict[str, Any] = {
        "id": id,
        "name": id,
        "destination": destination,
        "version": version,
        "entityConfig": entity or {},
    }
    if dest is not None:
        data["destinationConfig"] = dest
    data.update(fields)
    return parse_config(data)
