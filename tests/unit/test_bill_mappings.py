"""The external mappings a delivery request carries, and the customer among them (pure)."""

from __future__ import annotations

import pytest

from shared.contracts import ExternalMapping, ExternalSystem
from shared.sinks.customers import BillMappings, MappingLookup, bill_mappings, resolve_customer
from shared.sinks.errors import MissingAccountMappingError
from tests.support.builders import bill, config, line

PADDLE = ExternalSystem.PADDLE


def mapping(
    mid: str,
    table: str,
    ext: str,
    *,
    entity: str = "Account",
    m3ter_id: str = "acc-1",
    parent: str | None = None,
    system: ExternalSystem = PADDLE,
) -> ExternalMapping:
    return ExternalMapping(
        id=mid,
        external_system=system,
        external_table=table,
        external_id=ext,
        m3ter_entity=entity,
        m3ter_id=m3ter_id,
        integration_config_id=parent,
    )


def lookup_in(rows: list[ExternalMapping]) -> MappingLookup:
    def lookup(system: ExternalSystem, m3ter_id: str) -> list[ExternalMapping]:
        return [m for m in rows if m.external_system is system and m.m3ter_id == m3ter_id]

    return lookup


MAPPED = {"useExternalMappingAccountCode": True}
ENFORCED = {"useExternalMappingAccountCode": True, "enforceExternalMappingsForConfig": True}


def test_an_address_mapping_is_never_taken_for_the_customer() -> None:
    cfg = config("cfg-1", "PADDLE_SANDBOX", entity=MAPPED)
    # The Address row sorts first by id and is parented to this configuration: without the
    # table it would win the ranking.
    rows = [
        mapping("a-address", "Address", "add_1", parent="cfg-1"),
        mapping("b-business", "Business", "biz_1", parent="cfg-1"),
        mapping("c-customer", "Customer", "ctm_1"),
    ]
    assert resolve_customer("acc-1", cfg, rows, PADDLE, "Customer") == "ctm_1"
    with pytest.raises(MissingAccountMappingError, match="externalTable Customer"):
        resolve_customer("acc-1", cfg, rows[:2], PADDLE, "Customer")


def test_the_customer_table_compares_case_insensitively() -> None:
    cfg = config("cfg-1", "XERO", entity=MAPPED)
    rows = [mapping("m1", "contact", "c-1", system=ExternalSystem.XERO)]
    assert resolve_customer("acc-1", cfg, rows, ExternalSystem.XERO, "Contact") == "c-1"


def test_a_bill_carries_its_accounts_products_and_bands_mappings_in_its_system() -> None:
    b = bill(
        "bill-1",
        "acc-1",
        lines=[
            line("l1", productId="prod-a"),
            line(
                "l2",
                productId="prod-b",
                usagePerPricingBand=[
                    {
                        "pricingBandId": "band-1",
                        "lowerLimit": "0",
                        "unitPrice": "1",
                        "bandQuantity": "1",
                        "bandSubtotal": "1",
                    }
                ],
            ),
            line("l3", "STANDING_CHARGE"),
        ],
    )
    rows = [
        mapping("m-cust", "Customer", "ctm_1"),
        mapping("m-addr", "Address", "add_1"),
        mapping("m-prod-a", "Product", "pro_a", entity="Product", m3ter_id="prod-a"),
        mapping("m-prod-b", "Item", "B", entity="Product", m3ter_id="prod-b"),
        mapping("m-band", "Item", "BAND", entity="PricingBand", m3ter_id="band-1"),
        mapping("m-other-acc", "Customer", "ctm_2", m3ter_id="acc-2"),
        mapping("m-other-prod", "Product", "pro_c", entity="Product", m3ter_id="prod-c"),
        mapping("m-stripe", "Customer", "cus_1", system=ExternalSystem.STRIPE),
    ]
    cfg = config("cfg-1", "PADDLE_SANDBOX", entity=MAPPED)
    view = bill_mappings(b, cfg, PADDLE, lookup_in(rows))
    assert [m.id for m in view.rows] == ["m-cust", "m-addr", "m-band", "m-prod-a", "m-prod-b"]
    assert view.account_id == "acc-1" and view.config_id == "cfg-1" and not view.enforce
    found = view.for_account("Address")
    assert found is not None and found.external_id == "add_1"
    found = view.for_product("prod-a", "product")
    assert found is not None and found.external_id == "pro_a"
    found = view.find("PricingBand", "band-1", "Item")
    assert found is not None and found.external_id == "BAND"
    assert view.for_account("Business") is None
    assert view.for_product("prod-c", "Product") is None  # not on the bill


def test_the_views_helpers_rank_own_configuration_then_unparented_and_enforce() -> None:
    rows = (
        mapping("m1", "Customer", "elsewhere", parent="cfg-9"),
        mapping("m2", "Customer", "global"),
        mapping("m3", "Customer", "mine", parent="cfg-1"),
        mapping("p1", "Product", "p-global", entity="Product", m3ter_id="prod-a"),
        mapping("p2", "Product", "p-elsewhere", entity="Product", m3ter_id="prod-a", parent="x"),
    )
    view = BillMappings("acc-1", "cfg-1", False, rows)
    assert [m.external_id for m in view.ranked("Account", "acc-1", "Customer")] == [
        "mine",
        "global",
        "elsewhere",
    ]
    assert BillMappings("acc-1", "cfg-1", False, rows[:2]).for_account("Customer") == rows[1]
    product = view.for_product("prod-a", "Product")
    assert product is not None and product.external_id == "p-global"
    enforced = BillMappings("acc-1", "cfg-1", True, rows)
    assert [m.external_id for m in enforced.ranked("Account", "acc-1", "Customer")] == ["mine"]
    assert enforced.for_product("prod-a", "Product") is None


def test_the_view_takes_the_configurations_enforce_rule() -> None:
    cfg = config("cfg-1", "PADDLE_SANDBOX", entity=ENFORCED)
    rows = [mapping("m2", "Customer", "global")]
    view = bill_mappings(bill("bill-1", "acc-1"), cfg, PADDLE, lookup_in(rows))
    assert view.enforce and view.rows == (rows[0],)
    assert view.for_account("Customer") is None


def test_a_request_built_without_mappings_carries_none() -> None:
    assert BillMappings().rows == () and BillMappings().for_account("Customer") is None
