"""The Paddle plan: one manual transaction per bill, refused before any call when Paddle
would refuse it; parties and products from the external mappings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.paddle_sink.mapping import (
    BILL_ID,
    BILL_VERSION,
    CONFIG_ID,
    PaddleTransactionPlan,
    Parties,
    plan_transaction,
    product_ids,
    resolve_parties,
)
from shared.contracts import Bill, ExternalMapping, PaddleIntegrationConfig
from shared.sinks.errors import FatalBillError, MissingAccountMappingError
from tests.support.builders import bill, config, line

CTM = "ctm_" + "a" * 26
ADD = "add_" + "b" * 26
BIZ = "biz_" + "c" * 26
PRO = "pro_" + "d" * 26
PARTIES = Parties(CTM, ADD, None)


def paddle_config(cid: str = "cfg-p", entity: dict[str, Any] | None = None, **dest: Any) -> Any:
    cfg = config(cid, "PADDLE_SANDBOX", entity=entity, dest=dest or None)
    assert isinstance(cfg, PaddleIntegrationConfig)
    return cfg


def plan(b: Bill, **dest: Any) -> PaddleTransactionPlan:
    return plan_transaction(b, paddle_config(**dest), PARTIES, {})


def mapping(
    mid: str, table: str, external: str, m3ter: str = "acc-1", entity: str = "Account", **kw: Any
) -> ExternalMapping:
    return ExternalMapping.model_validate(
        {
            "id": mid,
            "externalSystem": "Paddle",
            "externalTable": table,
            "externalId": external,
            "m3terEntity": entity,
            "m3terId": m3ter,
            **kw,
        }
    )


def test_a_bill_is_one_manual_draft_transaction() -> None:
    b = bill(
        lines=[line("li-1", subtotal="12.34", quantity="2"), line("li-2", subtotal="5")],
        bill_date=date(2026, 11, 1),
        due_date=date(2026, 12, 1),
        start_date=date(2026, 10, 1),
        end_date=date(2026, 11, 1),
        purchase_order_number="PO-77",
    )
    p = plan(b)
    body = p.body()
    assert body["collection_mode"] == "manual"
    assert body["customer_id"] == CTM and body["address_id"] == ADD
    assert body["currency_code"] == "USD"
    assert body["billing_details"] == {
        "enable_checkout": False,
        "payment_terms": {"interval": "day", "frequency": 30},
        "purchase_order_number": "PO-77",
    }
    assert body["billing_period"] == {
        "starts_at": "2026-10-01T00:00:00Z",
        "ends_at": "2026-11-01T00:00:00Z",
    }
    assert "status" not in body  # left as a draft (ready when complete), never billed
    first, second = body["items"]
    assert first["quantity"] == 2
    assert first["price"]["unit_price"] == {"amount": "617", "currency_code": "USD"}
    assert first["price"]["product"] == {"name": "li-1", "tax_category": "standard"}
    assert "quantity" not in first["price"]  # the default range 1-100 fits
    assert second["price"]["unit_price"]["amount"] == "500"
    assert body["custom_data"] == {
        BILL_ID: "bill-1",
        BILL_VERSION: "1",
        CONFIG_ID: "cfg-p",
        "billsync_account_id": "acc-1",
    }
    assert p.total == 1734


def test_payment_terms_fall_back_to_the_configuration_without_a_due_date() -> None:
    p = plan(bill(), paymentTermsInterval="week", paymentTermsFrequency=2)
    assert p.body()["billing_details"]["payment_terms"] == {"interval": "week", "frequency": 2}
    assert "purchase_order_number" not in p.body()["billing_details"]
    same_day = bill(bill_date=date(2026, 11, 1), due_date=date(2026, 11, 1))
    assert plan(same_day).payment_terms == ("day", 1)


def test_decimal_quantity_folds_into_the_unit_price_with_the_true_quantity() -> None:
    b = bill(
        lines=[
            line("li-1", subtotal="1218.80", quantity="1523.5", description="API calls"),
            line("li-2", subtotal="10.00", quantity="3", description="Seats"),
        ]
    )
    usage, seats = plan(b).body()["items"]
    assert usage["quantity"] == 1
    assert usage["price"]["unit_price"]["amount"] == "121880"
    assert usage["price"]["description"] == "API calls \u2014 1523.5 \u00d7 0.8 USD"
    assert usage["price"]["name"] == usage["price"]["description"]
    # 1000 cents do not divide by 3: one item of the exact amount, quantity said in words.
    assert seats["quantity"] == 1 and seats["price"]["unit_price"]["amount"] == "1000"
    assert "3 \u00d7" in seats["price"]["description"]


def test_quantity_above_100_sets_the_price_quantity_range() -> None:
    p = plan(bill(lines=[line("li-1", subtotal="250", quantity="250")]))
    [item] = p.body()["items"]
    assert item["quantity"] == 250
    assert item["price"]["quantity"] == {"minimum": 1, "maximum": 250}
    assert item["price"]["unit_price"]["amount"] == "100"


def test_negative_line_is_a_validation_error_naming_the_line() -> None:
    b = bill(lines=[line("li-1"), line("li-credit", subtotal="-5.00", description="Credit")])
    with pytest.raises(FatalBillError) as caught:
        plan(b)
    assert "line 2 [li-credit] (Credit)" in caught.value.message
    assert "negative" in caught.value.message
    two = bill(lines=[line("a", subtotal="-1"), line("b"), line("c", subtotal="-2")])
    with pytest.raises(FatalBillError, match=r"2 negative line items.*line 1 \[a\].*line 3 \[c\]"):
        plan(two)


def test_more_than_100_items_and_no_items_are_refused() -> None:
    with pytest.raises(FatalBillError, match=r"101 lines.*at most 100"):
        plan(bill(lines=[line(f"li-{i}") for i in range(101)]))
    assert len(plan(bill(lines=[line(f"li-{i}") for i in range(100)])).items) == 100
    with pytest.raises(FatalBillError, match="line items"):
        plan(bill(lines=[]))


@pytest.mark.parametrize("currency", ["JPY", "CAD", "AUD"])
def test_manual_collection_takes_usd_eur_gbp_only(currency: str) -> None:
    b = bill().model_copy(update={"currency": currency})
    with pytest.raises(FatalBillError, match=f"currency: the bill is in {currency}"):
        plan(b)
    automatic = plan(b, collectionMode="automatic")
    assert automatic.body()["currency_code"] == currency
    assert "billing_details" not in automatic.body()
    for ok in ("EUR", "GBP"):
        assert plan(bill().model_copy(update={"currency": ok})).currency == ok


def test_a_line_in_another_currency_and_a_bad_tax_category_are_refused() -> None:
    with pytest.raises(FatalBillError, match=r"line 1 \[li-1\].*EUR"):
        plan(bill(lines=[line("li-1", currency="EUR")]))
    with pytest.raises(FatalBillError, match="taxCategory"):
        plan(bill(), taxCategory="food")


def test_products_from_mappings_then_configuration_then_inline() -> None:
    b = bill(
        lines=[
            line("li-1", productId="prod-api", productName="API"),
            line("li-2", productId="prod-other", productName="Other"),
        ]
    )
    cfg = paddle_config()
    products = product_ids(
        b, cfg, [mapping("m1", "Product", PRO, m3ter="prod-api", entity="Product")]
    )
    first, second = plan_transaction(b, cfg, PARTIES, products).body()["items"]
    assert first["price"]["product_id"] == PRO and "product" not in first["price"]
    assert second["price"]["product"] == {"name": "Other", "tax_category": "standard"}
    fixed = "pro_" + "e" * 26
    with_default = plan_transaction(b, paddle_config(productId=fixed), PARTIES, products)
    assert [i.product_id for i in with_default.items] == [PRO, fixed]
    bad = [mapping("m2", "Product", "prod_x", m3ter="prod-api", entity="Product")]
    with pytest.raises(FatalBillError, match="not a Paddle product id"):
        product_ids(b, cfg, bad)


def test_parties_from_account_mappings() -> None:
    cfg = paddle_config(entity={"useExternalMappingAccountCode": True})
    rows = [
        mapping("m1", "Customer", CTM),
        mapping("m2", "Address", ADD),
        mapping("m3", "Business", BIZ),
        mapping("m4", "Customer", "ctm_" + "z" * 26, m3ter="acc-2"),
    ]
    assert resolve_parties("acc-1", cfg, rows) == Parties(CTM, ADD, BIZ)
    parented = mapping("m0", "Customer", "ctm_" + "p" * 26, integrationConfigId="cfg-p")
    assert resolve_parties("acc-1", cfg, [*rows, parented]).customer_id == parented.external_id


def test_missing_mappings_are_missing_account_mapping_errors() -> None:
    cfg = paddle_config(entity={"useExternalMappingAccountCode": True})
    with pytest.raises(MissingAccountMappingError, match="Paddle Customer mapping for account"):
        resolve_parties("acc-1", cfg, [mapping("m2", "Address", ADD)])
    with pytest.raises(MissingAccountMappingError, match=r"Address.*manual collection"):
        resolve_parties("acc-1", cfg, [mapping("m1", "Customer", CTM)])
    automatic = paddle_config(
        entity={"useExternalMappingAccountCode": True}, collectionMode="automatic"
    )
    assert resolve_parties("acc-1", automatic, [mapping("m1", "Customer", CTM)]).address_id is None
    enforced = paddle_config(
        entity={"useExternalMappingAccountCode": True, "enforceExternalMappingsForConfig": True}
    )
    rows = [mapping("m1", "Customer", CTM), mapping("m2", "Address", ADD)]
    with pytest.raises(MissingAccountMappingError, match="parent configuration 'cfg-p'"):
        resolve_parties("acc-1", enforced, rows)
    with pytest.raises(MissingAccountMappingError, match="not a Paddle address id"):
        resolve_parties(
            "acc-1", cfg, [mapping("m1", "Customer", CTM), mapping("m2", "Address", "x")]
        )


def test_without_external_mapping_account_code_the_account_id_is_the_customer() -> None:
    cfg = paddle_config()
    assert resolve_parties(CTM, cfg, [mapping("m2", "Address", ADD, m3ter=CTM)]).customer_id == CTM
    with pytest.raises(MissingAccountMappingError, match="useExternalMappingAccountCode is off"):
        resolve_parties("acc-1", cfg, [mapping("m2", "Address", ADD)])


@settings(max_examples=200, deadline=None)
@given(
    subtotal=st.decimals(min_value=Decimal(0), max_value=Decimal("99999999"), places=4),
    quantity=st.decimals(min_value=Decimal(0), max_value=Decimal("1e6"), places=3),
)
def test_every_item_charges_the_line_amount_in_integer_minor_units(
    subtotal: Decimal, quantity: Decimal
) -> None:
    p = plan(bill(lines=[line("li-1", subtotal=str(subtotal), quantity=str(quantity))]))
    [item] = p.body()["items"]
    amount = item["price"]["unit_price"]["amount"]
    assert amount.isdigit() and isinstance(item["quantity"], int) and item["quantity"] >= 1
    expected = int((subtotal * 100).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    assert int(amount) * item["quantity"] == expected
    limit = item["price"].get("quantity", {"minimum": 1, "maximum": 100})
    assert limit["minimum"] <= item["quantity"] <= limit["maximum"]
    assert 2 <= len(item["price"]["description"]) <= 500 and len(item["price"]["name"]) <= 150


def test_the_body_is_valid_against_paddles_openapi_document() -> None:
    from fakes.paddle import spec

    b = bill(
        lines=[
            line("li-1", subtotal="1218.80", quantity="1523.5", productId="prod-api"),
            line("li-2", subtotal="250", quantity="250", description="x"),
            line("li-3", subtotal="0", quantity="0", description=""),
        ],
        bill_date=date(2026, 11, 1),
        due_date=date(2026, 11, 15),
        start_date=date(2026, 10, 1),
        end_date=date(2026, 11, 1),
        purchase_order_number="PO-1",
    )
    products = {"prod-api": PRO}
    body = plan_transaction(b, paddle_config(), Parties(CTM, ADD, BIZ), products).body()
    assert spec.check("transaction-create", body) == []
    assert spec.check("transaction-update", body) == []
