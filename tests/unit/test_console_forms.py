"""The console's form <-> configuration conversion and previews (pure parts)."""

from __future__ import annotations

from multidict import MultiDict, MultiDictProxy

from services.control.console import data, forms
from shared.contracts import Destination, parse_config
from shared.routing.rules import FilterReason
from tests.support.builders import account, bill, line


def form(*pairs: tuple[str, str]) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(pairs))


def test_a_form_becomes_the_wire_body_the_api_validates() -> None:
    body, problems = forms.body_from_form(
        form(
            ("name", "UK"),
            ("accountIds", "acc-1"),
            ("accountIdsOther", "acc-9, acc-1\nacc-10"),
            ("entityConfig.onlySendBillOnApproval", "on"),
            ("entityConfig.excludedLineItemTypes", "MINIMUM_SPEND"),
            ("entityConfig.accountFilter", "  customFields.country == UK "),
            ("destinationConfig.daysUntilDue", "14"),
            ("destinationConfig.collectionMethod", "send_invoice"),
            ("destinationConfig.priceDataProductId", ""),
        ),
        Destination.STRIPE,
    )
    assert problems == []
    assert body["accountIds"] == ["acc-1", "acc-9", "acc-10"]
    assert body["entityConfig"]["onlySendBillOnApproval"] is True
    assert body["entityConfig"]["useExternalMappingAccountCode"] is False
    assert body["entityConfig"]["accountFilter"] == "customFields.country == UK"
    dest = body["destinationConfig"]
    assert dest["daysUntilDue"] == 14 and dest["collectionMethod"] == "send_invoice"
    assert dest["createStripeInvoice"] is False  # an unticked box is false
    assert "priceDataProductId" not in dest  # an empty optional setting is left out
    config = parse_config({**body, "id": "cfg-1"})
    assert config.entity_config.excluded_line_item_types == ["MINIMUM_SPEND"]


def test_text_where_a_number_belongs_is_passed_on_for_the_api_to_refuse() -> None:
    body, _ = forms.body_from_form(
        form(("destinationConfig.paymentTermsFrequency", "soon")), Destination.PADDLE
    )
    assert body["destinationConfig"]["paymentTermsFrequency"] == "soon"
    _, problems = forms.body_from_form(
        form(("destinationConfig.fieldMappings", "[{")), Destination.STRIPE_TEST
    )
    assert problems[0]["field"] == "destinationConfig.fieldMappings"
    assert problems[0]["message"].startswith("not valid JSON")


def test_api_detail_paths_map_to_form_fields() -> None:
    errors = forms.errors_by_field(
        [
            {"field": "disabledNotificationUserIds.1", "message": "unknown user"},
            {"field": "destinationConfig.fieldMappings.0.target", "message": "bad target"},
            {"field": "entityConfig.accountFilter", "message": "caret"},
        ]
    )
    assert errors == {
        "disabledNotificationUserIds": ["unknown user"],
        "destinationConfig.fieldMappings": ["bad target"],
        "entityConfig.accountFilter": ["caret"],
    }


def test_the_vendor_pages_settings_have_their_help_text() -> None:
    documented = {
        Destination.STRIPE: ["createStripeInvoice", "priceDataProductId", "sendDueDate"],
        Destination.PADDLE_SANDBOX: ["collectionMode"],
        Destination.SALESFORCE: ["triggerType"],
        Destination.XERO: ["splitUsageLineItems"],
    }
    for destination, names in documented.items():
        found = {s.name.split(".", 1)[1]: s for s in forms.settings_for(destination)}
        for name in names:
            assert found[name].help, name
    assert (
        "Bills to be sent when they have been approved"
        in forms.HELP["entityConfig.onlySendBillOnApproval"]
    )


def test_preview_says_why_an_account_is_left_out() -> None:
    config = parse_config(
        {
            "id": "cfg-1",
            "destination": "STRIPE_TEST",
            "accountIds": ["a", "b"],
            "restrictedAccountIds": ["b"],
            "entityConfig": {"accountFilter": "customFields.country == US"},
        }
    )
    accounts = [
        account("a"),
        account("b"),
        account("c", customFields={"country": "GB"}),
        account("a2"),
    ]
    accounts[0] = account("a", customFields={"country": "US"})
    found = {m.account.id: m.reason for m in data.match_accounts(config, accounts)}
    assert found == {
        "a": None,
        "b": FilterReason.DENY_LIST,
        "c": FilterReason.NOT_IN_ALLOW_LIST,
        "a2": FilterReason.NOT_IN_ALLOW_LIST,
    }
    config = parse_config({**config.to_wire(), "accountIds": [], "restrictedAccountIds": []})
    reasons = {m.account.id: m.reason for m in data.match_accounts(config, accounts)}
    assert reasons["c"] is FilterReason.FILTER_FALSE


def test_the_stripe_payload_is_the_sinks_plan_of_the_prepared_bill() -> None:
    config = parse_config(
        {
            "id": "cfg-1",
            "destination": "STRIPE_TEST",
            "entityConfig": {"excludedLineItemTypes": ["MINIMUM_SPEND"]},
        }
    )
    item = bill(
        "bill-1", "acc-1", lines=[line("l1", "USAGE", "12.50"), line("l2", "MINIMUM_SPEND")]
    )
    preview = data.preview_payload(config, item, account("acc-1"), [])
    assert preview.problem is None and preview.customer == "acc-1"
    assert '"amount": 1250' in preview.payload and "l2" not in preview.payload
    mapped = parse_config(
        {**config.to_wire(), "entityConfig": {"useExternalMappingAccountCode": True}}
    )
    refused = data.preview_payload(mapped, item, account("acc-1"), [])
    assert refused.problem is not None and "no Stripe external mapping" in refused.problem
