"""services/xero_sink/mapping.py: every setting, the band split's exact sums, credit notes,
and every planned document checked against Xero's own OpenAPI schema."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.xero import spec
from services.xero_sink.mapping import (
    DocumentKind,
    XeroDocumentPlan,
    plan_document,
    split_cents,
    version_in,
    xero_amount,
)
from shared.contracts import ExternalMapping, LineItem, XeroIntegrationConfig
from shared.sinks.errors import FatalBillError, MissingAccountMappingError
from tests.support.builders import account, bill, config, line

CONTACT = "430fa14a-f945-44d3-9f97-5df5e28441b8"


def xero(entity: dict[str, Any] | None = None, **dest: Any) -> XeroIntegrationConfig:
    made = config("cfg-x", "XERO", entity=entity or {}, dest=dest)
    assert isinstance(made, XeroIntegrationConfig)
    return made


def mapping(
    m3ter_id: str,
    external_id: str,
    table: str = "Item",
    entity: str = "Product",
    parent: str | None = None,
    ident: str | None = None,
) -> ExternalMapping:
    return ExternalMapping.model_validate(
        {
            "id": ident or f"m-{entity}-{m3ter_id}-{table}-{parent}",
            "externalSystem": "Xero",
            "externalTable": table,
            "externalId": external_id,
            "m3terEntity": entity,
            "m3terId": m3ter_id,
            "integrationConfigId": parent,
        }
    )


def usage(**fields: Any) -> LineItem:
    data: dict[str, Any] = {
        "description": "API calls",
        "quantity": "1523.5",
        "subtotal": "1218.80",
        "productId": "prod-api",
        "unit": "call",
    }
    data.update(fields)
    return line("li-1", "USAGE", str(data.pop("subtotal")), **data)


def banded() -> LineItem:
    bands = [
        {
            "pricingBandId": "b1",
            "lowerLimit": "0",
            "bandQuantity": "1000",
            "unitPrice": "1",
            "bandSubtotal": "1000",
        },
        {
            "pricingBandId": "b2",
            "lowerLimit": "1000",
            "bandQuantity": "523.5",
            "unitPrice": "0.4176",
            "bandSubtotal": "218.6136",
        },
    ]
    return usage(subtotal="1218.6136", usagePerPricingBand=bands)


def plan(
    b: Any, cfg: XeroIntegrationConfig | None = None, mappings: Any = (), customer: str = CONTACT
) -> XeroDocumentPlan:
    cfg = cfg or xero({"useExternalMappingAccountCode": True})
    return plan_document(b, b.account or account(b.account_id), cfg, customer, list(mappings))


def assert_spec_accepts(p: XeroDocumentPlan) -> None:
    schema = "Invoice" if p.kind is DocumentKind.INVOICE else "CreditNote"
    assert spec.errors(schema, p.element()) == []


# ---- the document -------------------------------------------------------------------------


def test_an_accrec_draft_with_number_reference_contact_dates_and_settings() -> None:
    b = bill(
        lines=[usage()],
        purchase_order_number="PO-77",
        version=3,
        bill_date=dt.date(2026, 11, 1),
        due_date=dt.date(2026, 12, 1),
    )
    p = plan(b)
    body = p.element()
    assert body["Type"] == "ACCREC" and body["Status"] == "DRAFT"
    assert body["InvoiceNumber"] == "bill-1"
    assert body["Reference"] == "PO-77 (v3)" and version_in(body["Reference"]) == 3
    assert body["Contact"] == {"ContactID": CONTACT}
    assert body["Date"] == "2026-11-01" and body["DueDate"] == "2026-12-01"
    assert body["LineAmountTypes"] == "Exclusive" and body["CurrencyCode"] == "USD"
    assert body["LineItems"] == [
        {
            "Description": "API calls",
            "Quantity": Decimal("1523.5"),
            "UnitAmount": Decimal("0.8000"),
            "AccountCode": "200",
        }
    ]
    assert p.total == Decimal("1218.80")
    assert_spec_accepts(p)


def test_reference_is_the_bill_id_without_a_po_number() -> None:
    assert plan(bill(lines=[usage()], version=2)).reference == "bill-1 (v2)"
    assert version_in("PO-1") is None and version_in(None) is None


@pytest.mark.parametrize("status", ["DRAFT", "SUBMITTED", "AUTHORISED"])
@pytest.mark.parametrize("amounts", ["Exclusive", "Inclusive", "NoTax"])
def test_status_line_amount_types_tax_type_and_default_account_settings(
    status: str, amounts: str
) -> None:
    cfg = xero(
        {"useExternalMappingAccountCode": True},
        invoiceStatus=status,
        lineAmountTypes=amounts,
        taxType="OUTPUT2",
        salesAccountCode="260",
    )
    p = plan(bill(lines=[usage()], bill_date=dt.date(2026, 11, 1)), cfg)
    body = p.element()
    assert body["Status"] == status and body["LineAmountTypes"] == amounts
    assert (
        body["LineItems"][0]["TaxType"] == "OUTPUT2"
        and body["LineItems"][0]["AccountCode"] == "260"
    )
    assert body["DueDate"] == "2026-11-01"  # the bill date when the bill has no due date
    assert_spec_accepts(p)


def test_an_authorised_invoice_without_any_date_is_refused_before_a_call() -> None:
    with pytest.raises(FatalBillError, match="needs a due date"):
        plan(
            bill(lines=[usage()]),
            xero({"useExternalMappingAccountCode": True}, invoiceStatus="AUTHORISED"),
        )
    assert plan(bill(lines=[usage()])).due_date is None  # a DRAFT may wait


def test_without_external_mapping_account_code_xero_finds_the_contact_by_number_and_name() -> None:
    b = bill(lines=[usage()], embed=account("acc-1", accountName="Acme Inc"))
    p = plan_document(b, b.account, xero(), "acc-1", [])
    assert p.contact == {"ContactNumber": "acc-1", "Name": "Acme Inc"}
    assert_spec_accepts(p)


# ---- product -> item / account mappings ---------------------------------------------------


def test_item_and_account_codes_come_from_product_mappings() -> None:
    maps = [mapping("prod-api", "API-CALLS"), mapping("prod-api", "4000", table="Account")]
    p = plan(bill(lines=[usage(), line("li-2", "STANDING_CHARGE", "5")]), mappings=maps)
    first, second = p.element()["LineItems"]
    assert first["ItemCode"] == "API-CALLS" and first["AccountCode"] == "4000"
    assert "ItemCode" not in second and second["AccountCode"] == "200"  # no product: default


def test_a_mapping_for_this_configuration_wins_over_an_unparented_one() -> None:
    maps = [
        mapping("prod-api", "GENERIC"),
        mapping("prod-api", "MINE", parent="cfg-x"),
        mapping("prod-api", "THEIRS", parent="cfg-other"),
    ]
    assert plan(bill(lines=[usage()]), mappings=maps).lines[0].item_code == "MINE"


def test_enforced_mappings_only_this_configurations_a_missing_one_is_a_missing_mapping() -> None:
    cfg = xero({"useExternalMappingAccountCode": True, "enforceExternalMappingsForConfig": True})
    maps = [mapping("prod-api", "THEIRS", parent="cfg-other")]
    with pytest.raises(MissingAccountMappingError, match="cfg-x") as caught:
        plan(bill(lines=[usage()]), cfg, maps)
    assert caught.value.event_type.value == "integration.missingaccountmapping.error"
    assert (
        plan(bill(lines=[usage()]), cfg, [*maps, mapping("prod-api", "MINE", parent="cfg-x")])
        .lines[0]
        .item_code
        == "MINE"
    )
    # Not enforced: another configuration's mapping is used rather than none.
    assert plan(bill(lines=[usage()]), mappings=maps).lines[0].item_code == "THEIRS"
    # A product with no Xero mappings at all takes the default account code.
    assert plan(bill(lines=[usage()]), cfg).lines[0].account_code == "200"


# ---- split usage, sorting, exclusions -----------------------------------------------------


def test_item_per_usage_band_gives_one_line_per_band_adding_up_to_the_subtotal() -> None:
    cfg = xero({"useExternalMappingAccountCode": True}, splitUsageLineItems="ITEM_PER_USAGE_BAND")
    maps = [mapping("b2", "API-BAND-2", entity="PricingBand"), mapping("prod-api", "API")]
    p = plan(bill(lines=[banded()]), cfg, maps)
    one, two = p.element()["LineItems"]
    assert one == {
        "Description": "API calls (from 0)",
        "Quantity": Decimal(1000),
        "UnitAmount": Decimal("1.0000"),
        "ItemCode": "API",
        "AccountCode": "200",
    }
    assert two["Description"] == "API calls (from 1,000)" and two["ItemCode"] == "API-BAND-2"
    assert two["Quantity"] == Decimal("523.5") and two["UnitAmount"] == Decimal("0.4176")
    assert p.total == Decimal("1218.61")
    per_product = plan(bill(lines=[banded()]), mappings=maps)
    assert len(per_product.lines) == 1 and per_product.total == p.total
    assert_spec_accepts(p)


def test_bands_that_do_not_explain_their_line_fall_back_to_one_line() -> None:
    cfg = xero({"useExternalMappingAccountCode": True}, splitUsageLineItems="ITEM_PER_USAGE_BAND")
    odd = usage(
        subtotal="5000",
        usagePerPricingBand=[{"pricingBandId": "b1", "bandQuantity": "10", "bandSubtotal": "10"}],
    )
    assert [x.key for x in plan(bill(lines=[odd]), cfg).lines] == ["li-1"]


def test_sorting_and_exclusions_are_applied() -> None:
    lines = [
        line("a", "USAGE", "3", aggregationId="z"),
        line("b", "MINIMUM_SPEND", "1"),
        line("c", "USAGE", "2", aggregationId="a"),
    ]
    by_subtotal = xero(
        {
            "useExternalMappingAccountCode": True,
            "sortLineItemsBy": "SUBTOTAL",
            "excludedLineItemTypes": ["MINIMUM_SPEND"],
        }
    )
    assert [x.key for x in plan(bill(lines=lines), by_subtotal).lines] == ["c", "a"]
    by_aggregation = xero(
        {"useExternalMappingAccountCode": True, "sortLineItemsBy": "AGGREGATION_ID"}
    )
    assert [x.key for x in plan(bill(lines=lines), by_aggregation).lines] == ["c", "a", "b"]
    none = xero(
        {"useExternalMappingAccountCode": True, "excludedLineItemTypes": ["USAGE", "MINIMUM_SPEND"]}
    )
    assert plan(bill(lines=lines), none).skip_reason is not None


# ---- amounts ------------------------------------------------------------------------------


def test_a_quantity_xero_cannot_hold_becomes_quantity_one_with_the_quantity_in_words() -> None:
    p = plan(bill(lines=[usage(quantity="0.000001", subtotal="12.34")]))
    only = p.lines[0]
    assert (only.quantity, only.unit_amount, only.amount) == (
        Decimal(1),
        Decimal("12.34"),
        Decimal("12.34"),
    )
    assert "0.000001 call" in only.description
    odd = plan(bill(lines=[usage(quantity="3", subtotal="10.00")])).lines[0]
    assert xero_amount(odd.quantity, odd.unit_amount) == Decimal("10.00")


def test_negative_lines_stay_lines_in_a_positive_invoice() -> None:
    p = plan(bill(lines=[usage(), line("cr", "CREDIT_MEMO", "-18.80")]))
    assert p.kind is DocumentKind.INVOICE and p.total == Decimal("1200.00")
    assert p.lines[1].unit_amount == Decimal("-18.8000")
    assert_spec_accepts(p)


def test_a_negative_total_is_an_accreccredit_credit_note() -> None:
    p = plan(
        bill(
            lines=[line("cr", "CREDIT_MEMO", "-50.00"), line("fee", "AD_HOC", "10.00")],
            due_date=dt.date(2026, 12, 1),
        )
    )
    body = p.element()
    assert p.kind is DocumentKind.CREDIT_NOTE and body["Type"] == "ACCRECCREDIT"
    assert body["CreditNoteNumber"] == "bill-1" and "InvoiceNumber" not in body
    assert [x["UnitAmount"] for x in body["LineItems"]] == [Decimal("50.0000"), Decimal("-10.0000")]
    assert p.total == Decimal("40.00") and "DueDate" not in body
    assert_spec_accepts(p)


def test_limits_are_refused_before_any_call() -> None:
    with pytest.raises(FatalBillError, match="255"):
        plan(bill("b" * 256, lines=[usage()]))
    with pytest.raises(FatalBillError, match="4000"):
        plan(bill(lines=[usage(description="d" * 4001)]))
    with pytest.raises(FatalBillError, match="Reference"):
        plan(bill(lines=[usage()], purchase_order_number="p" * 260))


# ---- properties ---------------------------------------------------------------------------

money = st.decimals(
    min_value=Decimal("-99999"),
    max_value=Decimal("99999"),
    allow_nan=False,
    allow_infinity=False,
    places=6,
)
quantity = st.decimals(
    min_value=Decimal("0"),
    max_value=Decimal("1e7"),
    allow_nan=False,
    allow_infinity=False,
    places=6,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(quantity, money), min_size=1, max_size=6))
def test_band_lines_add_up_to_the_lines_subtotal_exactly(
    bands: list[tuple[Decimal, Decimal]],
) -> None:
    subtotal = sum((s for _, s in bands), Decimal(0))
    item = usage(
        subtotal=str(subtotal),
        quantity=str(sum((q for q, _ in bands), Decimal(0))),
        usagePerPricingBand=[
            {
                "pricingBandId": f"b{i}",
                "lowerLimit": str(i * 100),
                "bandQuantity": str(q),
                "bandSubtotal": str(s),
            }
            for i, (q, s) in enumerate(bands)
        ],
    )
    cfg = xero({"useExternalMappingAccountCode": True}, splitUsageLineItems="ITEM_PER_USAGE_BAND")
    p = plan(bill(lines=[item]), cfg)
    cents = subtotal.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    signed = sum((xero_amount(x.quantity, x.unit_amount) for x in p.lines), Decimal(0))
    assert signed == (cents if p.kind is DocumentKind.INVOICE else -cents)
    for x in p.lines:
        assert x.quantity == x.quantity.quantize(Decimal("0.0001"))
        assert x.unit_amount == x.unit_amount.quantize(Decimal("0.0001"))
    assert_spec_accepts(p)


@settings(max_examples=200, deadline=None)
@given(st.lists(money, min_size=1, max_size=8))
def test_split_cents_adds_up_and_stays_within_a_cent(parts: list[Decimal]) -> None:
    total = sum(parts, Decimal(0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    out = split_cents(parts, total)
    assert sum(out, Decimal(0)) == total
    assert all(abs(o - p) < Decimal("0.01") for o, p in zip(out, parts, strict=True))
