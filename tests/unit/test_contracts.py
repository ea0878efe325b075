"""Wire contracts: camelCase, Decimal money, discriminated destination settings, schemas."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pydantic
import pytest

from services.cli.configs import ConfigFileError, load_config_file
from shared import schemas
from shared.contracts import (
    Bill,
    LineItemType,
    PaddleIntegrationConfig,
    StripeIntegrationConfig,
    parse_config,
)

DESIGN_BILL = {
    "id": "bill-0001",
    "version": 3,
    "accountId": "acc-0001",
    "accountCode": "ACME",
    "billDate": "2026-11-01",
    "dueDate": "2026-12-01",
    "currency": "usd",
    "status": "PENDING",
    "billTotal": "1234.5600",
    "purchaseOrderNumber": "PO-77",
    "lineItems": [
        {
            "id": "li-1",
            "lineItemType": "USAGE",
            "quantity": "1523.5",
            "subtotal": "1218.80",
            "averageUnitPrice": "0.8",
            "servicePeriodStartDate": "2026-10-01T00:00:00Z",
        }
    ],
}


def test_bill_amounts_are_decimal_and_round_trip_as_strings() -> None:
    bill = Bill.model_validate(DESIGN_BILL)
    assert bill.bill_total == Decimal("1234.5600")
    assert isinstance(bill.line_items[0].quantity, Decimal)
    assert bill.currency == "USD"
    wire = json.loads(bill.to_bytes())
    assert wire["billTotal"] == "1234.5600" and wire["lineItems"][0]["quantity"] == "1523.5"
    assert "accountId" in wire and "account_id" not in wire


def test_all_nineteen_line_item_types() -> None:
    assert len(LineItemType) == 19


def test_destination_settings_are_a_discriminated_union() -> None:
    stripe = parse_config(
        {"id": "c1", "destination": "STRIPE", "destinationConfig": {"createStripeInvoice": False}}
    )
    assert isinstance(stripe, StripeIntegrationConfig)
    assert stripe.destination_config.create_stripe_invoice is False
    paddle = parse_config({"id": "c2", "destination": "PADDLE_SANDBOX"})
    assert isinstance(paddle, PaddleIntegrationConfig)
    with pytest.raises(pydantic.ValidationError, match="createStripeInvoice"):
        parse_config(
            {
                "id": "c3",
                "destination": "PADDLE",
                "destinationConfig": {"createStripeInvoice": True},
            }
        )
    with pytest.raises(pydantic.ValidationError, match="destination"):
        parse_config({"id": "c4", "destination": "QUICKBOOKS"})


def test_bad_account_filter_is_refused_with_its_position() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        parse_config(
            {
                "id": "c1",
                "destination": "XERO",
                "entityConfig": {"accountFilter": "customFields.country == "},
            }
        )
    assert "column" in str(info.value)


def test_config_file_reports_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "configs.yaml"
    path.write_text(
        "- id: ok\n  destination: STRIPE\n"
        "- id: bad-filter\n  destination: XERO\n  entityConfig: {accountFilter: 'a == (1'}\n"
        "- id: typo\n  destination: STRIPE\n  entityConfg: {}\n"
        "- id: ok\n  destination: XERO\n"
    )
    with pytest.raises(ConfigFileError) as info:
        load_config_file(path)
    text = str(info.value)
    assert "bad-filter" in text and "accountFilter" in text
    assert "typo" in text and "entityConfg" in text
    assert "duplicate id 'ok'" in text


def test_config_file_accepts_the_design_example(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": "cfg-stripe-us",
                    "name": "Stripe US",
                    "entityType": "Bill",
                    "destination": "STRIPE_TEST",
                    "enabled": True,
                    "version": 1,
                    "integrationCredentialsId": "cred-stripe-test",
                    "accountIds": [],
                    "restrictedAccountIds": ["acc-0009"],
                    "disabledNotificationUserIds": ["ops@example.com"],
                    "entityConfig": {
                        "onlySendBillOnApproval": False,
                        "useExternalMappingAccountCode": True,
                        "enforceExternalMappingsForConfig": False,
                        "excludedLineItemTypes": ["MINIMUM_SPEND"],
                        "sortLineItemsBy": "SUBTOTAL",
                        "accountFilter": "customFields != null AND customFields.country == US",
                    },
                    "destinationConfig": {
                        "createStripeInvoice": True,
                        "priceDataProductId": None,
                        "poNumberCustomField": "PO Number",
                        "sendDueDate": False,
                    },
                }
            ]
        )
    )
    [cfg] = load_config_file(path)
    assert cfg.id == "cfg-stripe-us"


def test_published_json_schemas_are_current() -> None:
    assert schemas.stale() == [], "run `make schemas`"
