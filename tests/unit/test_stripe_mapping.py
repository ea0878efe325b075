"""Pure mapping of a prepared bill to a Stripe plan: every setting, every limit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from stripe._encode import _api_encode

from services.stripe_sink import params
from services.stripe_sink.invoice_fields import BILL_ID, ITEM_DIGEST, LINE_ID
from services.stripe_sink.keys import idempotency_key, ids_hash
from services.stripe_sink.lines import PlannedLine
from services.stripe_sink.mapping import Mode, StripeInvoicePlan, plan_invoice
from services.stripe_sink.money import stripe_amount_step
from shared.contracts import Account, Bill, LineItem, StripeIntegrationConfig
from shared.contracts.config import CollectionMethod
from shared.sinks.errors import FatalBillError
from tests.support.builders import account as make_account
from tests.support.builders import bill as make_bill
from tests.support.builders import config as make_config
from tests.support.builders import line

TIMES = "\u00d7"


def cfg(**dest: Any) -> StripeIntegrationConfig:
    config = make_config("cfg-s", dest=dest)
    assert isinstance(config, StripeIntegrationConfig)
    return config


def plan(
    bill: Bill | None = None, account: Account | None = None, **dest: Any
) -> StripeInvoicePlan:
    return plan_invoice(bill or make_bill(), account or make_account(), cfg(**dest), "cus_1")


def bill_of(*lines: LineItem, currency: str = "USD", **fields: Any) -> Bill:
    b = make_bill(lines=list(lines), **fields)
    return b.model_copy(update={"currency": currency})


def api_calls() -> LineItem:
    """1,523.5 calls at 0.8 USD: a decimal quantity."""
    return line(
        "li-1",
        subtotal="1218.80",
        quantity="1523.5",
        unit="call",
        averageUnitPrice="0.8",
        description="API calls",
    )


def seats_line() -> LineItem:
    return line("li-2", subtotal="50.00", quantity="5", averageUnitPrice="10", description="Seats")


# ---- invoice-level settings -------------------------------------------------------------


def test_defaults_build_a_finalized_standalone_invoice() -> None:
    p = plan()
    assert p.mode is Mode.INVOICE
    create = params.create_invoice(p)
    assert create["customer"] == "cus_1"
    assert create["currency"] == "usd"
    assert create["collection_method"] == "charge_automatically"
    assert create["auto_advance"] is True
    assert create["pending_invoice_items_behavior"] == "exclude"
    assert "days_until_due" not in create and "due_date" not in create
    assert "custom_fields" not in create
    meta = dict(create["metadata"])
    assert len(meta.pop("billsync_fields_digest")) == 32
    assert meta == {
        "billsync_bill_id": "bill-1",
        "billsync_account_id": "acc-1",
        "billsync_config_id": "cfg-s",
        "billsync_bill_version": "1",
    }
    assert p.finalize is True
    assert p.total == 1500
    assert p.skip_reason is None


def test_leave_as_drafts() -> None:
    p = plan(leaveInvoicesAsDrafts=True)
    assert p.auto_advance is False
    assert p.finalize is False
    assert params.create_invoice(p)["auto_advance"] is False


def test_send_invoice_uses_days_until_due() -> None:
    assert plan(collectionMethod="send_invoice").days_until_due == 30
    p = plan(collectionMethod="send_invoice", daysUntilDue=14)
    assert params.create_invoice(p)["days_until_due"] == 14
    assert p.due_date is None


def test_send_due_date_sets_due_date_at_noon_utc() -> None:
    b = make_bill(due_date="2026-12-01")
    p = plan(b, collectionMethod="send_invoice", sendDueDate=True)
    assert p.due_date == int(datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp())
    assert p.days_until_due is None
    create = params.create_invoice(p)
    assert create["due_date"] == p.due_date and "days_until_due" not in create


def test_send_due_date_is_ignored_when_charged_automatically() -> None:
    p = plan(make_bill(due_date="2026-12-01"), sendDueDate=True)
    assert p.due_date is None and p.days_until_due is None


def test_send_due_date_without_a_due_date_falls_back_to_days() -> None:
    p = plan(collectionMethod="send_invoice", sendDueDate=True)
    assert p.due_date is None and p.days_until_due == 30


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("send_invoice", CollectionMethod.SEND_INVOICE),
        (" Send_Invoice ", CollectionMethod.SEND_INVOICE),
        ("charge_automatically", CollectionMethod.CHARGE_AUTOMATICALLY),
        ("wire", CollectionMethod.CHARGE_AUTOMATICALLY),
        (True, CollectionMethod.CHARGE_AUTOMATICALLY),
    ],
)
def test_collection_method_override_per_customer(value: object, expected: CollectionMethod) -> None:
    acc = make_account(customFields={"stripe_collection_method": value})
    assert plan(account=acc).collection_method is expected


def test_collection_method_custom_field_is_configurable() -> None:
    acc = make_account(
        customFields={"terms": "charge_automatically", "stripe_collection_method": "send_invoice"}
    )
    p = plan(account=acc, collectionMethod="send_invoice", collectionMethodCustomField="terms")
    assert p.collection_method is CollectionMethod.CHARGE_AUTOMATICALLY
    p = plan(account=acc, collectionMethodCustomField=None)
    assert p.collection_method is CollectionMethod.CHARGE_AUTOMATICALLY


def test_po_number_custom_field() -> None:
    p = plan(make_bill(purchase_order_number="PO-77"), poNumberCustomField="PO Number")
    assert params.create_invoice(p)["custom_fields"] == [{"name": "PO Number", "value": "PO-77"}]
    assert plan(poNumberCustomField="PO Number").custom_fields == ()
    assert plan(make_bill(purchase_order_number="PO-77")).custom_fields == ()


def test_update_params_clear_custom_fields() -> None:
    update = params.update_invoice(plan(collectionMethod="send_invoice"))
    assert update["custom_fields"] == ""
    assert update["days_until_due"] == 30
    assert update["metadata"]["billsync_bill_version"] == "1"


# ---- lines ------------------------------------------------------------------------------


def test_without_product_lines_are_amounts_in_minor_units() -> None:
    p = plan(bill_of(line("a", subtotal="10.00"), line("b", subtotal="-2.50")))
    lines = [params.add_line(x, p.currency) for x in p.lines]
    assert lines[0]["amount"] == 1000 and "price_data" not in lines[0]
    assert lines[1]["amount"] == -250  # a credit
    assert lines[0]["metadata"] == {LINE_ID: "a"}
    assert p.total == 750


def test_price_data_product_gives_quantity_and_unit_amount_decimal() -> None:
    b = bill_of(
        line("a", subtotal="30.00", quantity="3", averageUnitPrice="10"),
        line("c", subtotal="-5.00"),
    )
    p = plan(b, priceDataProductId="prod_tax")
    first = params.add_line(p.lines[0], p.currency)
    assert first["price_data"] == {
        "currency": "usd",
        "product": "prod_tax",
        "unit_amount_decimal": Decimal("1000"),
    }
    assert first["quantity"] == 3
    assert "amount" not in first
    assert first["description"] == "a"  # integer quantity: Stripe shows it
    credit = params.add_line(p.lines[1], p.currency)
    assert credit["amount"] == -500 and "price_data" not in credit


def test_unit_amount_decimal_has_at_most_12_places_and_adds_up() -> None:
    p = plan(bill_of(line("a", subtotal="1.00", quantity="3")), priceDataProductId="prod_1")
    only = p.lines[0]
    assert only.quantity == 3
    assert only.unit_amount_decimal == Decimal("33.333333333333")
    assert str(only.unit_amount_decimal) == "33.333333333333"
    assert only.amount == 100


def test_decimal_quantities_make_every_line_quantity_one() -> None:
    usage = api_calls()
    seats = seats_line()
    p = plan(bill_of(usage, seats), priceDataProductId="prod_1")
    assert p.decimal_quantities
    assert [x.quantity for x in p.lines] == [1, 1]
    assert p.lines[0].unit_amount_decimal == Decimal("121880")
    assert p.lines[0].description == f"API calls — 1,523.5 call {TIMES} 0.8 USD"
    assert p.lines[1].description == f"Seats — 5 {TIMES} 10 USD"
    assert p.lines[1].unit_amount_decimal == Decimal("5000")


def test_decimal_quantities_without_product_still_describe() -> None:
    usage = api_calls()
    p = plan(bill_of(usage))
    assert p.lines[0].amount == 121880
    assert p.lines[0].description == f"API calls — 1,523.5 call {TIMES} 0.8 USD"


def test_amount_lines_show_a_quantity_stripe_cannot() -> None:
    p = plan(bill_of(line("a", subtotal="30.00", quantity="3", description="Seats")))
    assert p.lines[0].description == f"Seats — 3 {TIMES} 10 USD"
    p = plan(bill_of(line("a", subtotal="30.00", quantity="1", description="Fee")))
    assert p.lines[0].description == "Fee"


def test_always_show_price_and_quantity() -> None:
    b = bill_of(
        line(
            "a",
            subtotal="30.00",
            quantity="3",
            averageUnitPrice="10",
            description="Seats",
            unit="seat",
        )
    )
    p = plan(b, priceDataProductId="prod_1", alwaysShowPriceAndQuantity=True)
    assert p.lines[0].description == f"Seats — 3 seat {TIMES} 10 USD"
    assert p.lines[0].quantity == 3


def test_line_name_falls_back_to_product_then_type() -> None:
    b = bill_of(
        line("a", description=None, productName="Gold plan"),
        line("b", "MINIMUM_SPEND", description=None),
    )
    assert [x.description for x in plan(b).lines] == ["Gold plan", "Minimum spend"]


def test_zero_quantity_lines_dropped_unless_shown() -> None:
    b = bill_of(
        line("a", subtotal="10.00"),
        line("z", subtotal="0", quantity="0"),
        line("fee", subtotal="5.00", quantity="0"),
    )
    assert [x.key for x in plan(b).lines] == ["a", "fee"]  # money is never dropped
    assert [x.key for x in plan(b, showZeroQuantityLines=True).lines] == ["a", "z", "fee"]


def test_more_than_250_lines_collapse_into_one() -> None:
    items = [line(f"l{i}", subtotal="1.10") for i in range(251)]
    p = plan(bill_of(*items), companyName="Acme Usage")
    assert p.collapsed and len(p.lines) == 1
    only = p.lines[0]
    assert only.amount == 27610 == p.total
    assert only.description == "Acme Usage — 251 charges, total 276.1 USD"
    assert only.metadata[LINE_ID] == "collapsed"
    assert len(plan(bill_of(*items[:250])).lines) == 250


def test_collapsed_line_uses_the_product_when_set() -> None:
    items = [line(f"l{i}", subtotal="1") for i in range(300)]
    only = plan(bill_of(*items), priceDataProductId="prod_1").lines[0]
    assert (only.product, only.quantity, only.unit_amount_decimal) == (
        "prod_1",
        1,
        Decimal("30000"),
    )


def test_total_above_stripe_maximum_is_fatal() -> None:
    with pytest.raises(FatalBillError, match=r"999,999\.99 USD"):
        plan(bill_of(line("a", subtotal="600000"), line("b", subtotal="400000")))
    assert plan(bill_of(line("a", subtotal="999999.99"))).total == 99_999_999


def test_maximum_is_in_minor_units_of_the_currency() -> None:
    assert plan(bill_of(line("a", subtotal="99999999"), currency="JPY")).total == 99_999_999
    with pytest.raises(FatalBillError, match="JPY"):
        plan(bill_of(line("a", subtotal="100000000"), currency="JPY"))
    with pytest.raises(FatalBillError, match="BHD"):
        plan(bill_of(line("a", subtotal="100000"), currency="BHD"))


def test_one_line_above_the_maximum_is_fatal_even_if_credits_offset_it() -> None:
    with pytest.raises(FatalBillError, match="line a"):
        plan(bill_of(line("a", subtotal="1000000"), line("b", subtotal="-900000")))


def test_zero_and_three_decimal_currencies() -> None:
    jpy = plan(bill_of(line("a", subtotal="1500"), line("b", subtotal="0.5"), currency="JPY"))
    assert [x.amount for x in jpy.lines] == [1500, 1]
    assert params.create_invoice(jpy)["currency"] == "jpy"
    bhd = plan(
        bill_of(line("a", subtotal="1.2345", quantity="1"), currency="BHD"),
        priceDataProductId="prod_1",
    )
    # Stripe: the last digit of a three-decimal amount is 0 (1.2345 BHD -> 1.230).
    assert bhd.lines[0].amount == 1230
    assert bhd.lines[0].unit_amount_decimal == Decimal("1230")


def test_line_in_another_currency_is_fatal() -> None:
    with pytest.raises(FatalBillError, match="EUR"):
        plan(bill_of(line("a", currency="EUR")))


def test_service_periods() -> None:
    item = line(
        "a",
        servicePeriodStartDate="2026-10-01T00:00:00Z",
        servicePeriodEndDate="2026-11-01T00:00:00Z",
    )
    p = plan(bill_of(item, line("b"), start_date="2026-10-01", end_date="2026-11-01"))
    start = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())
    end = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) - 1  # Stripe's end is inclusive
    assert params.add_line(p.lines[0], "usd")["period"] == {"start": start, "end": end}
    assert p.lines[1].period is not None and p.lines[1].period.start == start  # bill dates
    assert plan(bill_of(line("c"))).lines[0].period is None


# ---- skipping ---------------------------------------------------------------------------


def test_skip_zero_total() -> None:
    b = bill_of(line("a", subtotal="5"), line("b", subtotal="-5"))
    assert plan(b).skip_reason is None
    assert "zero" in (plan(b, skipZeroTotalInvoices=True).skip_reason or "")


@pytest.mark.parametrize(
    ("subtotal", "currency", "skipped"),
    [
        ("0.49", "USD", True),
        ("0.50", "USD", False),
        ("0.29", "GBP", True),
        ("0.30", "GBP", False),
        ("49", "JPY", True),
        ("50", "JPY", False),
        ("-3", "USD", True),
        ("0.005", "BHD", False),  # 0.010 BHD: the smallest amount Stripe accepts
        ("0.004", "BHD", True),  # 0.000 BHD once rounded to Stripe's step
    ],
)
def test_skip_below_minimum_charge(subtotal: str, currency: str, skipped: bool) -> None:
    b = bill_of(line("a", subtotal=subtotal), currency=currency)
    reason = plan(b, skipZeroTotalInvoices=True).skip_reason
    assert (reason is not None) is skipped
    assert plan(b).skip_reason is None


def test_pending_items_skip_only_zero_totals() -> None:
    small = bill_of(line("a", subtotal="0.10"))
    assert plan(small, createStripeInvoice=False, skipZeroTotalInvoices=True).skip_reason is None
    zero = bill_of(line("a", subtotal="0"))
    assert plan(zero, createStripeInvoice=False, skipZeroTotalInvoices=True).skip_reason


# ---- pending invoice items --------------------------------------------------------------


def test_pending_items_carry_the_bill_ids_and_a_digest() -> None:
    p = plan(createStripeInvoice=False, priceDataProductId="prod_1")
    assert p.mode is Mode.PENDING_ITEMS
    item = params.invoice_item(p.lines[0], p)
    assert item["customer"] == "cus_1" and item["currency"] == "usd"
    assert item["price_data"]["product"] == "prod_1"
    meta = item["metadata"]
    assert meta[BILL_ID] == "bill-1" and meta["billsync_config_id"] == "cfg-s"
    assert meta["billsync_bill_version"] == "1" and meta[LINE_ID] == "li-1"
    assert len(meta[ITEM_DIGEST]) == 32
    other = plan(make_bill(version=2), createStripeInvoice=False, priceDataProductId="prod_1")
    assert other.lines[0].metadata[ITEM_DIGEST] != meta[ITEM_DIGEST]


def test_fields_digest_follows_the_invoice_fields() -> None:
    assert plan().fields_digest == plan().fields_digest
    assert plan().fields_digest != plan(leaveInvoicesAsDrafts=True).fields_digest
    assert plan().fields_digest != plan(make_bill(version=2)).fields_digest
    assert plan().fields_digest == plan(bill_of(line("a", subtotal="3"))).fields_digest


def test_digest_follows_the_lines() -> None:
    assert plan().lines_digest == plan().lines_digest
    assert plan().lines_digest != plan(bill_of(line("a", subtotal="3"))).lines_digest
    assert plan().lines_digest == plan(make_bill(version=9)).lines_digest


# ---- field mappings ---------------------------------------------------------------------


def mapping(source: str, target: str, name: str | None = None) -> dict[str, Any]:
    return {"source": source, "target": target, **({"name": name} if name else {})}


def test_field_mappings_to_every_target() -> None:
    acc = make_account(customFields={"region": "EMEA", "tier": "gold"})
    item = line(
        "a",
        productCustomFields={"stripe_product_id": "prod_gold", "sku": "G-1"},
        productCode="gold",
    )
    b = make_bill(
        lines=[item],
        account_code="ACME",
        custom_fields={"contract": "C-9"},
        sequential_invoice_number="INV-0042",
    )
    p = plan(
        b,
        acc,
        fieldMappings=[
            mapping("bill.sequentialInvoiceNumber", "invoice.custom_field", "Invoice no."),
            mapping("account.customFields.region", "invoice.custom_field", "Region"),
            mapping("bill.customFields.contract", "invoice.metadata", "contract"),
            mapping("account.accountName", "invoice.metadata", "account_name"),
            mapping("account.address.country", "invoice.metadata", "country"),
            mapping("bill.missing_field", "invoice.metadata", "absent"),
            mapping("product.customFields.stripe_product_id", "line.product"),
            mapping("product.customFields.sku", "line.metadata", "sku"),
            mapping("product.code", "line.metadata", "product_code"),
            mapping("account.customFields.tier", "line.metadata", "tier"),
        ],
    )
    assert [(f.name, f.value) for f in p.custom_fields] == [
        ("Invoice no.", "INV-0042"),
        ("Region", "EMEA"),
    ]
    assert p.metadata["contract"] == "C-9"
    assert p.metadata["account_name"] == "Name acc-1"
    assert p.metadata["country"] == "US"
    assert "absent" not in p.metadata
    only = p.lines[0]
    assert only.product == "prod_gold" and only.quantity == 1
    assert dict(only.metadata) == {
        LINE_ID: "a",
        "sku": "G-1",
        "product_code": "gold",
        "tier": "gold",
    }


def test_four_custom_fields_including_po_number() -> None:
    four = [mapping(f"bill.customFields.k{i}", "invoice.custom_field", f"F{i}") for i in range(4)]
    b = make_bill(purchase_order_number="PO-1", custom_fields={f"k{i}": "v" for i in range(4)})
    assert len(plan(b, fieldMappings=four).custom_fields) == 4
    # Five possible custom fields: refused when the configuration is written.
    with pytest.raises(ValidationError, match=r"5 invoice custom fields.*poNumberCustomField"):
        plan(b, poNumberCustomField="PO", fieldMappings=four)


def test_custom_field_value_limit_names_the_mapping() -> None:
    b = make_bill(custom_fields={"long": "x" * 141})
    with pytest.raises(FatalBillError, match=r"fieldMappings\[0\].*140"):
        plan(b, fieldMappings=[mapping("bill.customFields.long", "invoice.custom_field", "L")])


def test_metadata_value_limit() -> None:
    b = make_bill(custom_fields={"long": "x" * 501})
    with pytest.raises(FatalBillError, match=r"fieldMappings\[0\].*500"):
        plan(b, fieldMappings=[mapping("bill.customFields.long", "invoice.metadata", "long")])
    with pytest.raises(FatalBillError, match=r"line li-1.*500"):
        plan(b, fieldMappings=[mapping("bill.customFields.long", "line.metadata", "long")])


def test_metadata_key_count_limit() -> None:
    many = {f"k{i}": "v" for i in range(45)}
    b = make_bill(custom_fields=many)
    maps = [mapping(f"bill.customFields.k{i}", "invoice.metadata", f"k{i}") for i in range(44)]
    assert len(plan(b, fieldMappings=maps).metadata) == 49  # + the lines digest = 50
    maps.append(mapping("bill.customFields.k44", "invoice.metadata", "k44"))
    with pytest.raises(FatalBillError, match="51 metadata keys"):
        plan(b, fieldMappings=maps)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (mapping("bill.id", "invoice.metadata", "billsync_bill_id"), "billsync's own"),
        (mapping("bill.id", "invoice.metadata", "a[b]"), "square brackets"),
        (mapping("bill.id", "line.metadata"), "needs a name"),
        (mapping("product.customFields.x", "invoice.metadata", "x"), "line targets"),
    ],
)
def test_bad_mappings_are_refused_when_the_configuration_is_written(
    entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        plan(fieldMappings=[entry])


def test_the_sink_still_refuses_bad_mappings_that_bypassed_validation() -> None:
    from services.stripe_sink import fields
    from shared.contracts.config import StripeFieldMapping, StripeMappingTarget

    bad = StripeFieldMapping.model_construct(
        source="bill.id", target=StripeMappingTarget.INVOICE_METADATA, name="billsync_x"
    )
    with pytest.raises(FatalBillError, match="billsync's own"):
        fields.check_mappings([bad])


def test_bad_currency_is_fatal() -> None:
    with pytest.raises(FatalBillError, match="currency"):
        plan(bill_of(line("a"), currency="U$D"))


# ---- idempotency keys -------------------------------------------------------------------


def test_idempotency_keys_are_deterministic() -> None:
    key = idempotency_key("cfg", "bill", 3, "create")
    assert key == idempotency_key("cfg", "bill", 3, "create")
    assert key.startswith("billsync-create-") and len(key) <= 255
    assert key != idempotency_key("cfg", "bill", 4, "create")
    assert key != idempotency_key("cfg2", "bill", 3, "create")
    on_invoice = idempotency_key("cfg", "bill", 3, "finalize", "in_1")
    assert on_invoice != idempotency_key("cfg", "bill", 3, "finalize", "in_2")
    assert ids_hash(["b", "a"]) == ids_hash(["a", "b"])


# ---- issue 8: plain decimals, string limits, three-decimal currencies --------------------


def form(params: Mapping[str, Any]) -> dict[str, str]:
    """The request body the stripe SDK sends (form encoding, str() of every value)."""
    return dict(parse_qsl(urlencode(list(_api_encode(params)))))


def line_form(planned: PlannedLine, currency: str) -> dict[str, str]:
    """An add_lines body holding this one line."""
    return form({"lines": [params.add_line(planned, currency)]})


def test_tiny_unit_amount_is_sent_in_plain_notation() -> None:
    b = bill_of(line("a", subtotal="0.00000000001", quantity="1"))
    p = plan(b, priceDataProductId="prod_1")
    body = line_form(p.lines[0], p.currency)
    assert body["lines[0][price_data][unit_amount_decimal]"] == "0.000000001"  # not 1E-9
    p = plan(bill_of(line("a", subtotal="0.000001", quantity="1000")), priceDataProductId="p")
    body = line_form(p.lines[0], p.currency)
    assert body["lines[0][price_data][unit_amount_decimal]"] == "0.0000001"
    assert body["lines[0][quantity]"] == "1000"
    item = form(params.invoice_item(p.lines[0], p))
    assert item["price_data[unit_amount_decimal]"] == "0.0000001"


money_values = st.decimals(
    min_value=Decimal("0"), max_value=Decimal("99999"), allow_nan=False, places=9
)
quantities = st.decimals(
    min_value=Decimal("0"), max_value=Decimal("1e9"), allow_nan=False, places=14
)


@settings(max_examples=300, deadline=None)
@given(
    subtotal=money_values,
    quantity=quantities,
    currency=st.sampled_from(["USD", "JPY", "KWD", "BHD", "ISK"]),
    decimal_quantities=st.booleans(),
)
# A tiny quantity under a large amount: the unit price would need more digits than
# Decimal's context holds (this once raised InvalidOperation).
@example(
    subtotal=Decimal("99999"),
    quantity=Decimal("0.000000000001"),
    currency="USD",
    decimal_quantities=True,
)
def test_every_price_line_is_plain_within_12_places_and_charges_the_amount(
    subtotal: Decimal, quantity: Decimal, currency: str, decimal_quantities: bool
) -> None:
    b = bill_of(line("a", subtotal=str(subtotal), quantity=str(quantity)), currency=currency)
    p = plan(
        b,
        priceDataProductId="prod_1",
        sendDecimalQuantities=decimal_quantities,
        showZeroQuantityLines=True,
    )
    planned = p.lines[0]
    assert planned.amount % stripe_amount_step(currency) == 0
    body = line_form(planned, p.currency)
    unit = body["lines[0][price_data][unit_amount_decimal]"]
    shown = body.get("lines[0][quantity]") or body["lines[0][quantity_decimal]"]
    for text in (unit, shown):
        assert "E" not in text.upper()
        assert len(text.partition(".")[2]) <= 12
    # What Stripe charges: quantity x unit, rounded to the minor unit.
    charged = (Decimal(shown) * Decimal(unit)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert charged == planned.amount
    if "lines[0][quantity_decimal]" in body:
        assert decimal_quantities and Decimal(shown) == quantity


def test_three_decimal_currencies_send_amounts_ending_in_zero() -> None:
    b = bill_of(
        line("a", subtotal="5.124"),
        line("b", subtotal="5.125", quantity="3"),
        line("c", subtotal="-0.333"),
        currency="KWD",
    )
    amounts = plan(b)
    assert [x.amount for x in amounts.lines] == [5120, 5130, -330]
    assert amounts.total == 9920
    priced = plan(b, priceDataProductId="prod_1")
    second = params.add_line(priced.lines[1], priced.currency)
    assert second["quantity"] == 3
    unit = second["price_data"]["unit_amount_decimal"]
    assert (3 * unit).quantize(Decimal(1), rounding=ROUND_HALF_UP) == 5130
    items = plan(b, createStripeInvoice=False, priceDataProductId="prod_1")
    assert all(x.amount % 10 == 0 for x in items.lines)


def test_description_over_5000_characters_with_the_quantity_suffix_is_refused() -> None:
    name = "n" * 4990
    fits = plan(bill_of(line("a", subtotal="1", quantity="1", description=name)))
    assert len(fits.lines[0].description) == 4990
    with pytest.raises(FatalBillError, match=r"line a: the description is 5\d{3} characters.*5000"):
        plan(bill_of(line("a", subtotal="30", quantity="3", description=name)))
    with pytest.raises(FatalBillError, match="5000"):
        plan(bill_of(line("a", description="x" * 5001)), createStripeInvoice=False)


def test_billsyncs_own_metadata_values_are_checked_too() -> None:
    with pytest.raises(FatalBillError, match=r"invoice metadata.*billsync_bill_id.*500"):
        plan(make_bill(id="b" * 501))
    with pytest.raises(FatalBillError, match=r"line l+\u2026.*billsync_line_id.*500"):
        plan(bill_of(line("l" * 501)))


def test_a_long_product_id_is_refused_before_any_call() -> None:
    b = bill_of(line("a", productCustomFields={"pid": "p" * 5001}))
    with pytest.raises(FatalBillError, match="product id is 5001 characters"):
        plan(b, fieldMappings=[mapping("product.customFields.pid", "line.product")])


# ---- issue 8/9: true decimal quantities (sendDecimalQuantities) ---------------------------


def test_decimal_quantities_setting_sends_quantity_decimal() -> None:
    usage = api_calls()
    seats = seats_line()
    credit = line("li-3", subtotal="-1.00", quantity="0.5", description="Credit")
    p = plan(bill_of(usage, seats, credit), priceDataProductId="prod_1", sendDecimalQuantities=True)
    first, second, third = (line_form(x, p.currency) for x in p.lines)
    assert first["lines[0][quantity_decimal]"] == "1523.5"
    assert "lines[0][quantity]" not in first
    assert first["lines[0][price_data][unit_amount_decimal]"] == "80"
    assert first["lines[0][description]"] == "API calls"  # Stripe shows quantity and price
    assert second["lines[0][quantity]"] == "5" and second["lines[0][description]"] == "Seats"
    assert third["lines[0][amount]"] == "-100"  # a credit cannot be a Price
    assert third["lines[0][description]"] == f"Credit — 0.5 {TIMES} -2 USD"
    item = form(params.invoice_item(p.lines[0], p))
    assert item["quantity_decimal"] == "1523.5" and "quantity" not in item
    # Off (the default): quantity 1 and the real quantity in the description.
    off = plan(bill_of(usage, seats), priceDataProductId="prod_1")
    assert [x.quantity for x in off.lines] == [1, 1]
    assert off.lines[0].quantity_decimal is None


def test_decimal_quantities_fall_back_to_the_description_when_stripe_cannot_hold_them() -> None:
    many_places = line("a", subtotal="1.00", quantity="0.0000000000001", description="Tiny")
    p = plan(bill_of(many_places), priceDataProductId="prod_1", sendDecimalQuantities=True)
    assert (p.lines[0].quantity, p.lines[0].quantity_decimal) == (1, None)
    assert p.lines[0].description.startswith("Tiny — 0.0000000000001")
    no_product = plan(bill_of(line("b", quantity="2.5")), sendDecimalQuantities=True)
    assert "amount" in params.add_line(no_product.lines[0], "usd")
    assert "2.5" in no_product.lines[0].description


def test_decimal_quantities_change_the_lines_digest_only_when_used() -> None:
    integral = bill_of(line("a", quantity="2", subtotal="4"))
    on = plan(integral, priceDataProductId="p", sendDecimalQuantities=True)
    assert on.lines_digest == plan(integral, priceDataProductId="p").lines_digest
    decimal = bill_of(line("a", quantity="2.5", subtotal="5"))
    on = plan(decimal, priceDataProductId="p", sendDecimalQuantities=True)
    assert on.lines_digest != plan(decimal, priceDataProductId="p").lines_digest


def test_send_decimal_quantities_is_a_boolean_setting() -> None:
    assert cfg().destination_config.send_decimal_quantities is False
    assert cfg(sendDecimalQuantities=True).destination_config.send_decimal_quantities
    with pytest.raises(ValidationError):
        cfg(sendDecimalQuantities="sometimes")
