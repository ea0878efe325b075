"""Pure mapping of prepared bills to Salesforce records and the plan of Composite calls."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.salesforce_sink.mapping import (
    MAX_COLLECTION,
    MAX_HEAVY_SUBREQUESTS,
    MAX_SUBREQUESTS,
    BillRecords,
    Objects,
    existing_lines_query,
    plan_deletes,
    plan_records,
    plan_upserts,
    resolve_account,
)
from shared.contracts import Bill, ExternalMapping, SalesforceIntegrationConfig
from shared.sinks.errors import FatalBillError, MissingAccountMappingError
from tests.support.builders import bill as make_bill
from tests.support.builders import config as make_config
from tests.support.builders import line

SF_ACCOUNT = "001000000000001AAA"


def cfg(entity: dict[str, Any] | None = None, **dest: Any) -> SalesforceIntegrationConfig:
    config = make_config("cfg-sf", "SALESFORCE", entity=entity, dest=dest)
    assert isinstance(config, SalesforceIntegrationConfig)
    return config


def mapping(external_id: str = SF_ACCOUNT, parent: str | None = None) -> ExternalMapping:
    return ExternalMapping.model_validate(
        {
            "id": f"map-{parent}",
            "externalSystem": "Salesforce",
            "externalTable": "Account",
            "externalId": external_id,
            "m3terEntity": "Account",
            "m3terId": "acc-1",
            "integrationConfigId": parent,
        }
    )


def records(
    bill: Bill | None = None,
    config: SalesforceIntegrationConfig | None = None,
    mappings: list[ExternalMapping] | None = None,
) -> BillRecords:
    bill = bill or make_bill()
    config = config or cfg()
    return plan_records(bill, config, resolve_account(bill, config, mappings or []))


def test_bill_and_lines_with_default_objects_and_fields() -> None:
    bill = make_bill(
        lines=[
            line(
                "li-1",
                subtotal="1218.80",
                quantity="1523.5",
                unit="call",
                averageUnitPrice="0.8",
                description="API calls",
                servicePeriodStartDate="2026-10-01T00:00:00Z",
            )
        ],
        purchase_order_number="PO-77",
        sequential_invoice_number="INV-9",
    )
    out = records(bill)
    assert out.bill == {
        "attributes": {"type": "Billsync_Bill__c"},
        "Billsync_Bill_Id__c": "bill-1",
        "Name": "INV-9",
        "Bill_Version__c": 1,
        "Account_Code__c": None,
        "Bill_Date__c": None,
        "Due_Date__c": None,
        "Start_Date__c": None,
        "End_Date__c": None,
        "Currency__c": "USD",
        "Status__c": "PENDING",
        "Bill_Total__c": "1218.8",
        "Purchase_Order_Number__c": "PO-77",
        "Invoice_Number__c": "INV-9",
        "External_Invoice_Reference__c": None,
        "Billing_Frequency__c": None,
        "Last_Calculated_Date__c": None,
        "Account__r": {"Billsync_Account_Id__c": "acc-1"},
    }
    (only,) = out.lines
    assert only["attributes"] == {"type": "Billsync_Bill_Line__c"}
    assert only["Billsync_Line_Id__c"] == "bill-1:li-1"
    assert only["Bill__r"] == {"Billsync_Bill_Id__c": "bill-1"}
    assert only["Quantity__c"] == "1523.5" and only["Subtotal__c"] == "1218.8"
    assert only["Average_Unit_Price__c"] == "0.8" and only["Position__c"] == 1
    assert only["Service_Period_Start__c"] == "2026-10-01T00:00:00Z"
    assert out.line_keys == {"bill-1:li-1"}


def test_object_names_external_ids_and_field_mapping_are_configurable() -> None:
    config = cfg(
        billObject="Invoice__c",
        billExternalIdField="M3ter_Id__c",
        lineObject="Invoice_Line__c",
        lineExternalIdField="M3ter_Line_Id__c",
        lineBillField="Invoice__c",
        accountLookupField="Customer__c",
        accountExternalIdField="M3ter_Account__c",
        billFieldMapping={"billTotal": "Amount__c", "status": None},
        lineFieldMapping={"description": "Details__c"},
    )
    out = records(config=config)
    assert out.bill["attributes"] == {"type": "Invoice__c"}
    assert out.bill["M3ter_Id__c"] == "bill-1"
    assert out.bill["Amount__c"] == "15" and "Bill_Total__c" not in out.bill
    assert "Status__c" not in out.bill
    assert out.bill["Customer__r"] == {"M3ter_Account__c": "acc-1"}
    first = out.lines[0]
    assert first["Invoice__r"] == {"M3ter_Id__c": "bill-1"}
    assert first["M3ter_Line_Id__c"] == "bill-1:li-1" and first["Details__c"] == "li-1"
    assert "Description__c" not in first
    plans = plan_upserts(Objects.of(config.destination_config), [out])
    urls = [s.url for p in plans for s in p.subrequests]
    assert urls[0] == "/services/data/v67.0/composite/sobjects/Invoice__c/M3ter_Id__c"
    assert urls[1].endswith("/composite/sobjects/Invoice_Line__c/M3ter_Line_Id__c")


def test_unknown_mapping_properties_are_refused_when_written() -> None:
    with pytest.raises(ValidationError, match="unknown property 'total'"):
        cfg(billFieldMapping={"total": "Amount__c"})
    with pytest.raises(ValidationError, match="not a Salesforce field API name"):
        cfg(lineFieldMapping={"subtotal": "Sub total"})


def test_no_account_lookup_leaves_the_account_out() -> None:
    out = records(config=cfg(accountLookupField=None))
    assert not any(k.startswith("Account__") for k in out.bill)


def test_external_mapping_gives_the_salesforce_account_id() -> None:
    out = records(config=cfg({"useExternalMappingAccountCode": True}), mappings=[mapping()])
    assert out.bill["Account__c"] == SF_ACCOUNT and "Account__r" not in out.bill


def test_missing_mapping_is_a_missing_account_mapping_error() -> None:
    with pytest.raises(MissingAccountMappingError, match="acc-1"):
        records(config=cfg({"useExternalMappingAccountCode": True}))


def test_enforce_uses_only_mappings_parented_to_this_configuration() -> None:
    entity = {"useExternalMappingAccountCode": True, "enforceExternalMappingsForConfig": True}
    with pytest.raises(MissingAccountMappingError, match="cfg-sf"):
        records(config=cfg(entity), mappings=[mapping(parent="cfg-other")])
    other = "001000000000002AAA"
    out = records(
        config=cfg(entity),
        mappings=[mapping(parent="cfg-other"), mapping(other, parent="cfg-sf")],
    )
    assert out.bill["Account__c"] == other


def test_a_mapping_that_is_not_a_salesforce_id_is_refused() -> None:
    with pytest.raises(FatalBillError, match="not a Salesforce record id"):
        records(config=cfg({"useExternalMappingAccountCode": True}), mappings=[mapping("cus_123")])


def test_excluded_types_and_sorting() -> None:
    bill = make_bill(
        lines=[
            line("a", "USAGE", "5"),
            line("b", "MINIMUM_SPEND", "50"),
            line("c", "USAGE", "20"),
        ]
    )
    config = cfg({"excludedLineItemTypes": ["MINIMUM_SPEND"], "sortLineItemsBy": "SUBTOTAL"})
    out = records(bill, config)
    assert [(r["Billsync_Line_Id__c"], r["Position__c"]) for r in out.lines] == [
        ("bill-1:a", 1),
        ("bill-1:c", 2),
    ]
    by_aggregation = make_bill(
        lines=[line("a", aggregationId="z"), line("b"), line("c", aggregationId="m")]
    )
    out = records(by_aggregation, cfg({"sortLineItemsBy": "AGGREGATION_ID"}))
    assert [r["Billsync_Line_Id__c"] for r in out.lines] == ["bill-1:c", "bill-1:a", "bill-1:b"]


def test_numbers_beyond_salesforce_precision_are_refused_before_any_call() -> None:
    bill = make_bill(lines=[line("x", subtotal="123456789012345.5")])
    with pytest.raises(FatalBillError, match="at most 14"):
        records(bill)


def test_duplicate_line_ids_are_refused() -> None:
    with pytest.raises(FatalBillError, match="two lines"):
        records(make_bill(lines=[line("x"), line("x")]))


def test_names_are_cut_to_80_characters() -> None:
    out = records(make_bill(lines=[line("x", description="d" * 300)]))
    assert len(out.lines[0]["Name"]) == 80 and len(out.lines[0]["Description__c"]) == 300


def test_soql_quotes_are_escaped() -> None:
    objects = Objects.of(cfg().destination_config)
    query = existing_lines_query(objects, ["it's"])
    assert "IN ('it\\'s')" in query


# -- the plan of calls --------------------------------------------------------------------


def _bills(counts: list[int]) -> list[BillRecords]:
    config = cfg()
    return [
        records(make_bill(f"b{i}", lines=[line(f"l{j}") for j in range(n)]), config)
        for i, n in enumerate(counts)
    ]


def test_one_bill_and_its_lines_are_one_composite() -> None:
    plans = plan_upserts(Objects.of(cfg().destination_config), _bills([3]))
    assert len(plans) == 1
    kinds = [s.kind for s in plans[0].subrequests]
    assert kinds == ["bills", "lines", "query"]
    query = plans[0].subrequests[2].url
    soql = parse_qs(urlsplit(query).query)["q"][0]
    assert soql.endswith("WHERE Bill__r.Billsync_Bill_Id__c IN ('b0')")
    assert plans[0].wire()["allOrNone"] is False


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=900), min_size=1, max_size=40))
def test_plans_respect_salesforce_limits_and_order(counts: list[int]) -> None:
    bills = _bills(counts)
    plans = plan_upserts(Objects.of(cfg().destination_config), bills)
    sent_bills: list[str] = []
    sent_lines: list[str] = []
    for plan in plans:
        subs = plan.subrequests
        assert len(subs) <= MAX_SUBREQUESTS
        assert sum(s.kind in ("bills", "lines", "query", "delete") for s in subs) <= (
            MAX_HEAVY_SUBREQUESTS
        )
        for sub in subs:
            if sub.body is not None:
                recs = sub.body["records"]
                assert 1 <= len(recs) <= MAX_COLLECTION
                if sub.kind == "bills":
                    sent_bills += [r["Billsync_Bill_Id__c"] for r in recs]
                else:
                    for r in recs:
                        # a line travels after its bill
                        assert r["Bill__r"]["Billsync_Bill_Id__c"] in sent_bills
                    sent_lines += [r["Billsync_Line_Id__c"] for r in recs]
    assert sent_bills == [b.bill_id for b in bills]
    assert sent_lines == [
        k for b in bills for k in (str(r["Billsync_Line_Id__c"]) for r in b.lines)
    ]
    records_total = len(bills) + sum(counts)
    # The benchmark's target: at most 2 calls per 200 records on a backlog.
    assert len(plans) <= max(1, 2 * -(-records_total // 200))


def test_deletes_are_collections_of_at_most_200_ids() -> None:
    objects = Objects.of(cfg().destination_config)
    vanished = [("b1", f"a0C{i:012d}") for i in range(450)]
    plans = plan_deletes(objects, vanished)
    assert len(plans) == 1
    subs = plans[0].subrequests
    assert [s.method for s in subs] == ["DELETE"] * 3
    assert [len(parse_qs(urlsplit(s.url).query)["ids"][0].split(",")) for s in subs] == [
        200,
        200,
        50,
    ]
