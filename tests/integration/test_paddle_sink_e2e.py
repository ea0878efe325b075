"""The Paddle sink end to end on a real broker against the local Paddle: every setting
of the Paddle page, a negative line, a write committed before the answer was lost."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from shared.contracts import BillStatus, EventType, ExternalMapping, RunStatus
from shared.settings import Settings
from tests.support.builders import account, bill, config, line
from tests.support.kafka import publish
from tests.support.paddle_stack import PaddleStack, account_mappings, paddle_stack
from tests.support.services import running_router

pytestmark = pytest.mark.kafka

KEY = "pdl_sdbx_apikey_e2e"


def paddle_config(cid: str, entity: dict[str, Any] | None = None, **dest: Any) -> Any:
    entity = {"useExternalMappingAccountCode": True, **(entity or {})}
    return config(
        cid, "PADDLE_SANDBOX", integrationCredentialsId="cred-1", entity=entity, dest=dest or None
    )


async def publish_bills(
    stack: PaddleStack, items: list[Any], topic: str = "bill_generated"
) -> None:
    await publish(
        stack.settings.kafka_bootstrap_servers,
        stack.settings.topics.name(topic),
        [(b.id.encode(), b.to_bytes()) for b in items],
    )


def items_of(txn: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [
        (i["price"]["description"], i["quantity"], i["price"]["unit_price"]["amount"])
        for i in txn["items"]
    ]


async def test_every_setting_reaches_paddle_as_configured(settings: Settings) -> None:
    async with paddle_stack(settings, rate_limits={"enabled": False}) as stack:
        fake = stack.fake
        await stack.credential("cred-1", KEY)
        ids = {
            f"acc-{i}": fake.seed_customer(name=f"Customer {i}", business="B") for i in range(1, 9)
        }
        direct = fake.seed_customer(name="Direct")
        rows_direct = account_mappings(direct["customer_id"], direct)
        api_product = fake.seed_product("API")
        fixed_product = fake.seed_product("Everything")
        rows: list[ExternalMapping] = []
        for acc, found in ids.items():
            rows += account_mappings(acc, found, parent="cfg-enforce" if acc == "acc-8" else None)
        rows.append(
            ExternalMapping.model_validate(
                {
                    "id": "map-prod-api",
                    "externalSystem": "Paddle",
                    "externalTable": "Product",
                    "externalId": api_product,
                    "m3terEntity": "Product",
                    "m3terId": "prod-api",
                }
            )
        )
        await stack.mappings(*rows, *(r for r in rows_direct if r.external_table == "Address"))
        await stack.configs(
            paddle_config(
                "cfg-all",
                {
                    "excludedLineItemTypes": ["MINIMUM_SPEND"],
                    "sortLineItemsBy": "SUBTOTAL",
                    "accountFilter": "customFields != null AND customFields.country == US",
                },
                paymentTermsInterval="week",
                paymentTermsFrequency=2,
                taxCategory="saas",
            ).model_copy(
                update={
                    "account_ids": ["acc-1", "acc-2", "acc-3"],
                    "restricted_account_ids": ["acc-3"],
                }
            ),
            paddle_config(
                "cfg-approval",
                {"onlySendBillOnApproval": True},
                paymentTermsInterval="month",
                paymentTermsFrequency=1,
            ).model_copy(update={"account_ids": ["acc-4"]}),
            paddle_config("cfg-enforce", {"enforceExternalMappingsForConfig": True}).model_copy(
                update={"account_ids": ["acc-5", "acc-8"]}
            ),
            paddle_config("cfg-product", productId=fixed_product).model_copy(
                update={"account_ids": ["acc-6"]}
            ),
            paddle_config("cfg-auto", collectionMode="automatic").model_copy(
                update={"account_ids": ["acc-7"]}
            ),
            # useExternalMappingAccountCode off: the account id is the Paddle customer id
            paddle_config("cfg-direct", {"useExternalMappingAccountCode": False}).model_copy(
                update={"account_ids": [direct["customer_id"]]}
            ),
        )

        def acc_bill(n: int, **fields: Any) -> Any:
            country = "GB" if n == 2 else "US"
            return bill(
                f"bill-{n}",
                f"acc-{n}",
                embed=account(f"acc-{n}", customFields={"country": country}),
                **fields,
            )

        first = acc_bill(
            1,
            lines=[
                line(
                    "l-big",
                    "USAGE",
                    "20.00",
                    quantity="250",
                    description="Big usage",
                    productId="prod-api",
                ),
                line("l-min", "MINIMUM_SPEND", "100.00", description="Minimum"),
                line("l-small", "STANDING_CHARGE", "5.00", description="Seat fee"),
                line("l-dec", "USAGE", "7.50", quantity="2.5", description="Storage"),
            ],
            purchase_order_number="PO-77",
            bill_date=date(2026, 11, 1),
            due_date=date(2026, 11, 21),
        )
        generated = [
            first,
            acc_bill(2),
            acc_bill(3),
            acc_bill(4),
            acc_bill(5),
            acc_bill(6),
            acc_bill(7).model_copy(update={"currency": "JPY"}),
            acc_bill(8),
            bill("bill-9", direct["customer_id"], embed=account(direct["customer_id"])),
        ]
        async with running_router(stack.settings), stack.sink():
            await publish_bills(stack, generated)
            await stack.wait_final_runs(6)  # bill-1, 5, 6, 7, 8, 9
            assert "bill-4" not in stack.transactions_by_bill()
            approved = acc_bill(4).model_copy(update={"status": BillStatus.APPROVED})
            await publish_bills(stack, [approved], "bill_approved")
            runs = await stack.wait_final_runs(7)
        by_bill = stack.transactions_by_bill()
        assert set(by_bill) == {"bill-1", "bill-4", "bill-6", "bill-7", "bill-8", "bill-9"}
        assert all(len(v) == 1 for v in by_bill.values())
        [txn] = by_bill["bill-1"]
        # excluded MINIMUM_SPEND; sorted by subtotal; decimal quantity folded; 250 > 100
        assert items_of(txn) == [
            ("Seat fee", 1, "500"),
            ("Storage \u2014 2.5 \u00d7 3 USD", 1, "750"),
            ("Big usage", 250, "8"),
        ]
        big = txn["items"][2]["price"]
        assert big["product_id"] == api_product and big["quantity"]["maximum"] == 250
        assert txn["items"][0]["price"]["product_id"] != api_product
        products = {p["id"]: p for p in fake.state()["products"]}
        assert api_product in products
        assert txn["billing_details"]["payment_terms"] == {"interval": "day", "frequency": 20}
        assert txn["billing_details"]["purchase_order_number"] == "PO-77"
        assert txn["collection_mode"] == "manual" and txn["status"] == "ready"
        assert txn["customer_id"] == ids["acc-1"]["customer_id"]
        assert txn["address_id"] == ids["acc-1"]["address_id"]
        assert txn["business_id"] == ids["acc-1"]["business_id"]
        assert txn["custom_data"]["billsync_config_id"] == "cfg-all"
        inline = [li["product"] for li in txn["details"]["line_items"]]
        assert inline[0]["tax_category"] == "saas"
        [four] = by_bill["bill-4"]
        # no due date: the configuration's payment terms
        assert four["billing_details"]["payment_terms"] == {"interval": "month", "frequency": 1}
        assert four["custom_data"]["billsync_config_id"] == "cfg-approval"
        [six] = by_bill["bill-6"]
        assert {i["price"]["product_id"] for i in six["items"]} == {fixed_product}
        [seven] = by_bill["bill-7"]
        assert seven["collection_mode"] == "automatic" and seven["billing_details"] is None
        assert seven["currency_code"] == "JPY"
        [eight] = by_bill["bill-8"]
        assert eight["custom_data"]["billsync_config_id"] == "cfg-enforce"
        [nine] = by_bill["bill-9"]
        assert nine["customer_id"] == direct["customer_id"]
        assert nine["address_id"] == direct["address_id"] and nine["business_id"] is None
        statuses = {r.entity_id: r.status for r in runs.values()}
        assert statuses["bill-5"] is RunStatus.ERROR
        _, events = await stack.results()
        assert [(e.event_type, e.integration_config_id) for e in events] == [
            (EventType.MISSING_ACCOUNT_MAPPING, "cfg-enforce")
        ]


async def test_negative_line_is_a_validation_event_naming_it_and_no_call(
    settings: Settings,
) -> None:
    async with paddle_stack(settings, rate_limits={"enabled": False}) as stack:
        await stack.credential("cred-1", KEY)
        ids = stack.fake.seed_customer()
        await stack.mappings(*account_mappings("acc-1", ids))
        await stack.configs(paddle_config("cfg-p"))
        credit = bill(
            "bill-neg",
            "acc-1",
            embed=account("acc-1"),
            lines=[
                line("l-ok", "USAGE", "10.00", description="Usage"),
                line("l-credit", "CREDIT_MEMO", "-4.00", description="Goodwill credit"),
            ],
        )
        async with running_router(stack.settings), stack.sink():
            await publish_bills(stack, [credit])
            [run] = (await stack.wait_final_runs(1)).values()
        assert run.status is RunStatus.ERROR
        assert run.error and "line 2 [l-credit] (Goodwill credit)" in run.error
        _, events = await stack.results()
        [event] = events
        assert event.event_type is EventType.VALIDATION_ERROR
        assert "l-credit" in event.message and "negative" in event.message
        assert stack.fake.stats["requests"] == 0


async def test_timeout_after_paddle_committed_leaves_one_transaction(settings: Settings) -> None:
    async with paddle_stack(settings, rate_limits={"enabled": False}) as stack:
        await stack.credential("cred-1", KEY)
        ids = stack.fake.seed_customer()
        await stack.mappings(*account_mappings("acc-1", ids))
        await stack.configs(paddle_config("cfg-p"))
        stack.fake.configure(
            faults={
                "rules": [
                    {
                        "path_prefix": "/transactions",
                        "method": "POST",
                        "action": "drop_after_commit",
                    }
                ]
            }
        )
        b = bill("bill-t", "acc-1", embed=account("acc-1"))
        async with running_router(stack.settings), stack.sink():
            await publish_bills(stack, [b])
            [run] = (await stack.wait_final_runs(1)).values()
        assert stack.fake.stats["dropped_after_commit"] == 1
        [txn] = stack.transactions_by_bill()["bill-t"]
        assert run.status is RunStatus.COMPLETE and run.external_id == txn["id"]
        assert stack.fake.stats["by_endpoint"]["POST /transactions"] == 1
        assert stack.fake.stats["by_endpoint"]["GET /transactions"] == 1
