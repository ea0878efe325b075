"""The fake Stripe API, driven by the official SDK (async ``StripeClient``) and raw HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import stripe
from aiohttp import web

from fakes.stripe import FakeStripe, cli, forms

KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"  # the keys the ``fake`` fixture accepts
LIVE_KEY = "sk_live_51Hx0000000000000000abcd"


async def post(
    http: aiohttp.ClientSession,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], Any]:
    hdrs = dict(headers or {})
    if key is not None:
        hdrs["Idempotency-Key"] = key
    async with http.post(path, data=forms.encode(params or {}), headers=hdrs) as response:
        return response.status, await response.json(), response.headers


async def get(
    http: aiohttp.ClientSession, path: str, params: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any], Any]:
    async with http.get(path, params=forms.encode(params or {})) as response:
        return response.status, await response.json(), response.headers


def usd(unit: str | int, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    key = "unit_amount" if isinstance(unit, int) else "unit_amount_decimal"
    return {
        "price_data": {"currency": "usd", "product": "prod_usage", key: unit},
        "quantity": quantity,
        **extra,
    }


async def draft(client: stripe.StripeClient, **params: Any) -> stripe.Invoice:
    return await client.v1.invoices.create_async(params={"customer": "cus_a", **params})


async def refused(call: Any) -> stripe.StripeError:
    with pytest.raises(stripe.StripeError) as info:
        await call
    return info.value


def assert_error(
    err: stripe.StripeError, code: str | None, param: str | None, text: str = "", status: int = 400
) -> None:
    assert isinstance(err, stripe.InvalidRequestError), repr(err)
    assert err.http_status == status
    assert err.json_body is not None
    body = err.json_body["error"]
    assert body["type"] == "invalid_request_error"
    assert body.get("code") == code, body
    assert body.get("param") == param, body
    assert text in body["message"], body


# -- happy path ------------------------------------------------------------------------


async def test_create_add_lines_finalize_with_totals(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    inv = await draft(
        client,
        currency="usd",
        collection_method="send_invoice",
        days_until_due=30,
        description="Usage for May",
        custom_fields=[{"name": "PO number", "value": "PO-1"}],
        metadata={"billsync_bill_id": "bill_1"},
    )
    assert inv.object == "invoice" and inv.id.startswith("in_")
    assert inv.status == "draft" and inv.livemode is False and inv.auto_advance is False
    assert inv.due_date == inv.created + 30 * 86400
    assert inv.custom_fields is not None and inv.custom_fields[0].value == "PO-1"

    inv = await client.v1.invoices.add_lines_async(
        inv.id,
        params={
            "lines": [
                usd(
                    Decimal("12.5"),
                    3,
                    description="API calls",
                    metadata={"line": "1"},
                    period={"start": 1_700_000_000, "end": 1_702_592_000},
                ),
                usd("0.5", 1, description="half a cent rounds up"),
                {"amount": -1000, "description": "Credit"},
                usd(2500, 4),
            ]
        },
    )
    assert [line.amount for line in inv.lines.data] == [38, 1, -1000, 10000]
    assert inv.subtotal == inv.total == inv.amount_due == 9039
    first = inv.lines.data[0]
    assert first.object == "line_item" and first.id.startswith("il_")
    assert first.quantity == 3 and first.pricing is not None
    assert first.pricing.unit_amount_decimal == Decimal("12.5")
    assert first.period.start == 1_700_000_000 and first.metadata["line"] == "1"
    assert first.parent is not None and first.parent.invoice_item_details is not None
    assert first.parent.invoice_item_details.invoice_item.startswith("ii_")
    assert inv.lines.data[2].discountable is False

    final = await client.v1.invoices.finalize_invoice_async(inv.id, params={"auto_advance": False})
    assert final.status == "open" and final.number and final.amount_due == 9039
    assert final.status_transitions.finalized_at is not None
    got = await client.v1.invoices.retrieve_async(inv.id)
    assert got.status == "open" and got.lines.data[1].amount == 1
    assert [i["id"] for i in fake.invoices()] == [inv.id]
    assert fake.invoices()[0]["metadata"] == {"billsync_bill_id": "bill_1"}

    zero = await draft(client)
    paid = await client.v1.invoices.finalize_invoice_async(zero.id)
    assert paid.status == "paid" and paid.amount_due == 0


async def test_invoice_embeds_ten_lines_and_lists_the_rest(client: stripe.StripeClient) -> None:
    inv = await draft(client)
    inv = await client.v1.invoices.add_lines_async(
        inv.id, params={"lines": [{"amount": 100 + i} for i in range(12)]}
    )
    assert len(inv.lines.data) == 10 and inv.lines.has_more is True
    assert inv.total == sum(100 + i for i in range(12))
    page = await client.v1.invoices.line_items.list_async(inv.id, params={"limit": 5})
    assert len(page.data) == 5 and page.has_more
    every = [line.amount async for line in page.auto_paging_iter()]
    assert every == [100 + i for i in range(12)]


async def test_update_and_remove_lines(fake: FakeStripe, client: stripe.StripeClient) -> None:
    inv = await draft(client)
    inv = await client.v1.invoices.add_lines_async(
        inv.id, params={"lines": [usd("2", 5), {"amount": 700}, {"amount": 300}]}
    )
    a, b, c = (line.id for line in inv.lines.data)
    inv = await client.v1.invoices.update_lines_async(
        inv.id,
        params={
            "lines": [{"id": a, "quantity": 7, "metadata": {"x": "1"}}, {"id": b, "amount": 900}],
            "invoice_metadata": {"source": "billsync"},
        },
    )
    assert [line.amount for line in inv.lines.data] == [14, 900, 300]
    assert inv.metadata.to_dict() == {"source": "billsync"} and inv.total == 1214
    inv = await client.v1.invoices.remove_lines_async(
        inv.id,
        params={
            "lines": [
                {"id": b, "behavior": "delete"},
                {"id": c, "behavior": "unassign"},
            ]
        },
    )
    assert [line.id for line in inv.lines.data] == [a] and inv.total == 14
    pending = await client.v1.invoice_items.list_async(params={"pending": True})
    assert [i.amount for i in pending.data] == [300]
    err = await refused(
        client.v1.invoices.remove_lines_async(
            inv.id, params={"lines": [{"id": "il_nope", "behavior": "delete"}]}
        )
    )
    assert_error(err, "resource_missing", "lines[0][id]", "No such line item")
    assert len(fake.invoice_items()) == 2


# -- validation ------------------------------------------------------------------------

CREATE_REFUSALS = [
    (
        {"customer": "cus_a", "colour": "red"},
        "parameter_unknown",
        "colour",
        "Received unknown parameter: colour",
    ),
    ({}, "parameter_missing", "customer", "Missing required param: customer."),
    ({"customer": "cus_zzz"}, "resource_missing", "customer", "No such customer: 'cus_zzz'"),
    ({"customer": "cus_a", "days_until_due": 30}, None, "days_until_due", "send_invoice"),
    (
        {
            "customer": "cus_a",
            "collection_method": "charge_automatically",
            "due_date": 2_000_000_000,
        },
        None,
        "due_date",
        "send_invoice",
    ),
    (
        {
            "customer": "cus_a",
            "collection_method": "send_invoice",
            "days_until_due": 3,
            "due_date": 2_000_000_000,
        },
        "parameters_exclusive",
        "due_date",
        "days_until_due, due_date",
    ),
    (
        {"customer": "cus_a", "collection_method": "weekly"},
        None,
        "collection_method",
        "must be one of charge_automatically or send_invoice",
    ),
    (
        {"customer": "cus_a", "custom_fields": [{"name": f"n{i}", "value": "v"} for i in range(5)]},
        None,
        "custom_fields",
        "at most 4",
    ),
    (
        {"customer": "cus_a", "custom_fields": [{"name": "n" * 41, "value": "v"}]},
        None,
        "custom_fields[0][name]",
        "at most 40 characters",
    ),
    (
        {"customer": "cus_a", "custom_fields": [{"name": "n", "value": "v" * 141}]},
        None,
        "custom_fields[0][value]",
        "at most 140 characters",
    ),
    (
        {"customer": "cus_a", "custom_fields": [{"name": "n"}]},
        "parameter_missing",
        "custom_fields[0][value]",
        "",
    ),
    (
        {"customer": "cus_a", "metadata": {f"k{i}": "v" for i in range(51)}},
        None,
        "metadata",
        "up to 50 keys",
    ),
    (
        {"customer": "cus_a", "metadata": {"k" * 41: "v"}},
        None,
        f"metadata[{'k' * 41}]",
        "Metadata keys can have up to 40 characters",
    ),
    (
        {"customer": "cus_a", "metadata": {"k": "v" * 501}},
        None,
        "metadata[k]",
        "Metadata values can have up to 500 characters",
    ),
    (
        {"customer": "cus_a", "pending_invoice_items_behavior": "maybe"},
        None,
        "pending_invoice_items_behavior",
        "must be one of exclude or include",
    ),
    ({"customer": "cus_a", "auto_advance": "yes"}, None, "auto_advance", "Invalid boolean: yes"),
    ({"customer": ""}, "parameter_invalid_empty", "customer", "You passed an empty string"),
]


@pytest.mark.parametrize(("params", "code", "param", "text"), CREATE_REFUSALS)
async def test_invoice_create_refusals(
    fake: FakeStripe,
    client: stripe.StripeClient,
    params: dict[str, Any],
    code: str | None,
    param: str,
    text: str,
) -> None:
    err = await refused(client.v1.invoices.create_async(params=params))
    assert_error(err, code, param, text)
    assert fake.invoices() == []


LINE_REFUSALS = [
    (usd("1", 1.5), "parameter_invalid_integer", "lines[0][quantity]", "Invalid integer: 1.5"),
    (
        usd("0.1234567890123"),
        None,
        "lines[0][price_data][unit_amount_decimal]",
        "at most 12 decimal places",
    ),
    (
        {"price_data": {"currency": "eur", "product": "p", "unit_amount": 100}},
        None,
        "lines[0][price_data][currency]",
        "(eur) must match the currency of the invoice (usd)",
    ),
    ({"amount": 100, **usd(5)}, "parameters_exclusive", "lines[0][price_data]", "amount"),
    ({"description": "no price"}, "parameter_missing", "lines[0][amount]", ""),
    ({"amount": 100, "colour": "red"}, "parameter_unknown", "lines[0][colour]", ""),
    (
        {"price_data": {"currency": "usd", "product": "p"}},
        "parameter_missing",
        "lines[0][price_data][unit_amount]",
        "",
    ),
    (
        {"amount": "12.50"},
        "parameter_invalid_integer",
        "lines[0][amount]",
        "Invalid integer: 12.50",
    ),
    (usd(100, -1), None, "lines[0][quantity]", "greater than or equal to 0"),
    # Stripe's own checks that stripe-mock does not make (issue 8): plain decimals only,
    # at most 12 places in quantity_decimal too, descriptions of at most 5,000 characters.
    (usd("1E-9"), None, "lines[0][price_data][unit_amount_decimal]", "Invalid decimal: 1E-9"),
    (
        {
            "price_data": {"currency": "usd", "product": "p", "unit_amount_decimal": "1"},
            "quantity_decimal": "0.1234567890123",
        },
        None,
        "lines[0][quantity_decimal]",
        "at most 12 decimal places",
    ),
    ({"amount": 5, "description": "d" * 5001}, None, "lines[0][description]", "at most 5000"),
    ({"amount": 5, "period": {"start": 10, "end": 5}}, None, "lines[0][period][end]", ""),
]


@pytest.mark.parametrize(("line", "code", "param", "text"), LINE_REFUSALS)
async def test_add_lines_refusals(
    fake: FakeStripe,
    client: stripe.StripeClient,
    line: dict[str, Any],
    code: str | None,
    param: str,
    text: str,
) -> None:
    inv = await draft(client)
    err = await refused(client.v1.invoices.add_lines_async(inv.id, params={"lines": [line]}))
    assert_error(err, code, param, text)
    assert fake.invoices()[0]["lines"]["data"] == []


async def test_invoice_item_refusals(fake: FakeStripe, client: stripe.StripeClient) -> None:
    items = client.v1.invoice_items
    cases = [
        (
            {"customer": "cus_a", "quantity": 2.5, "unit_amount_decimal": "1"},
            "parameter_invalid_integer",
            "quantity",
            "Invalid integer: 2.5",
        ),
        (
            {"customer": "cus_a", "quantity": 2, "unit_amount_decimal": "1.0000000000001"},
            None,
            "unit_amount_decimal",
            "at most 12 decimal places",
        ),
        (
            {"customer": "cus_a", "amount": 100, "quantity": 2},
            "parameters_exclusive",
            "quantity",
            "",
        ),
        ({"amount": 100}, "parameter_missing", "customer", ""),
        ({"customer": "cus_nope", "amount": 100}, "resource_missing", "customer", "No such"),
    ]
    for params, code, param, text in cases:
        assert_error(await refused(items.create_async(params=params)), code, param, text)
    inv = await draft(client)
    err = await refused(
        items.create_async(
            params={"customer": "cus_a", "amount": 100, "currency": "eur", "invoice": inv.id}
        )
    )
    assert_error(err, None, "currency", "(eur) must match the currency of the invoice (usd)")
    err = await refused(
        items.create_async(params={"customer": "cus_b", "amount": 100, "invoice": inv.id})
    )
    assert_error(err, None, "invoice", "another customer")
    assert fake.invoice_items() == []
    # Quantity x unit_amount_decimal, with a negative amount allowed on its own.
    item = await items.create_async(
        params={
            "customer": "cus_a",
            "quantity": 3,
            "unit_amount_decimal": "33.333333333333",
            "invoice": inv.id,
        }
    )
    assert item.amount == 100 and item.invoice == inv.id and item.quantity == 3
    credit = await items.create_async(params={"customer": "cus_a", "amount": -250})
    assert credit.amount == -250 and credit.invoice is None and credit.discountable is False


async def test_at_most_250_lines(fake: FakeStripe, client: stripe.StripeClient) -> None:
    inv = await draft(client)
    err = await refused(
        client.v1.invoices.add_lines_async(inv.id, params={"lines": [{"amount": 1}] * 251})
    )
    assert_error(err, None, "lines", "at most 250 line items")
    inv = await client.v1.invoices.add_lines_async(inv.id, params={"lines": [{"amount": 1}] * 250})
    assert inv.lines.total_count == 250 and inv.total == 250
    err = await refused(
        client.v1.invoices.add_lines_async(inv.id, params={"lines": [{"amount": 1}]})
    )
    assert_error(err, None, "lines", "at most 250 line items")
    err = await refused(
        client.v1.invoice_items.create_async(
            params={"customer": "cus_a", "amount": 1, "invoice": inv.id}
        )
    )
    assert_error(err, None, "invoice", "at most 250 line items")
    assert len(fake.invoice(inv.id)["lines"]["data"]) == 250


async def test_amount_due_above_maximum_refused_on_finalize(client: stripe.StripeClient) -> None:
    ok = await draft(client)
    await client.v1.invoices.add_lines_async(ok.id, params={"lines": [{"amount": 99_999_999}]})
    assert (await client.v1.invoices.finalize_invoice_async(ok.id)).status == "open"
    big = await draft(client)
    await client.v1.invoices.add_lines_async(
        big.id, params={"lines": [{"amount": 99_999_999}, {"amount": 1}]}
    )
    err = await refused(client.v1.invoices.finalize_invoice_async(big.id))
    assert_error(err, "amount_too_large", "amount_due", "$999,999.99")
    again = await client.v1.invoices.retrieve_async(big.id)
    assert again.status == "draft"
    assert again.last_finalization_error is not None
    assert again.last_finalization_error.code == "amount_too_large"


async def test_only_drafts_are_editable(fake: FakeStripe, client: stripe.StripeClient) -> None:
    inv = await draft(client, collection_method="send_invoice", days_until_due=7)
    inv = await client.v1.invoices.add_lines_async(inv.id, params={"lines": [{"amount": 500}]})
    line_id = inv.lines.data[0].id
    await client.v1.invoices.finalize_invoice_async(inv.id)
    invoices = client.v1.invoices
    attempts = [
        invoices.add_lines_async(inv.id, params={"lines": [{"amount": 1}]}),
        invoices.remove_lines_async(
            inv.id, params={"lines": [{"id": line_id, "behavior": "delete"}]}
        ),
        invoices.update_lines_async(inv.id, params={"lines": [{"id": line_id, "amount": 1}]}),
        invoices.update_async(inv.id, params={"collection_method": "charge_automatically"}),
        invoices.delete_async(inv.id),
        invoices.finalize_invoice_async(inv.id),
        client.v1.invoice_items.create_async(
            params={"customer": "cus_a", "amount": 1, "invoice": inv.id}
        ),
    ]
    for attempt in attempts:
        err = await refused(attempt)
        assert isinstance(err, stripe.InvalidRequestError) and err.http_status == 400
        assert err.code == "invoice_not_editable", err.json_body
    item_id = fake.invoice_items()[0]["id"]
    err = await refused(client.v1.invoice_items.delete_async(item_id))
    assert err.code == "invoice_not_editable"
    # Stripe still lets metadata (and description/footer) change on an open invoice.
    updated = await invoices.update_async(inv.id, params={"metadata": {"synced": "yes"}})
    assert updated.metadata.to_dict() == {"synced": "yes"} and updated.total == 500
    # A draft takes everything; an empty metadata value unsets the key.
    other = await draft(client, metadata={"a": "1", "b": "2"})
    other = await invoices.update_async(
        other.id,
        params={
            "metadata": {"a": ""},
            "collection_method": "send_invoice",
            "days_until_due": 14,
            "description": "edited",
        },
    )
    assert other.metadata.to_dict() == {"b": "2"} and other.due_date == other.created + 14 * 86400
    deleted = await invoices.delete_async(other.id)
    assert deleted.deleted is True
    assert [i["id"] for i in fake.invoices()] == [inv.id]


async def test_state_transitions_and_payment_failure(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    fake.seed_customer("cus_declines", currency="usd", payment_fails=True)
    inv = await client.v1.invoices.create_async(params={"customer": "cus_declines"})
    await client.v1.invoices.add_lines_async(inv.id, params={"lines": [{"amount": 1200}]})
    await client.v1.invoices.finalize_invoice_async(inv.id)
    err = await refused(client.v1.invoices.pay_async(inv.id))
    assert isinstance(err, stripe.CardError) and err.http_status == 402
    assert err.code == "card_declined"
    paid = await client.v1.invoices.pay_async(inv.id, params={"paid_out_of_band": True})
    assert paid.status == "paid" and paid.amount_paid == 1200 and paid.amount_remaining == 0
    err = await refused(client.v1.invoices.void_invoice_async(inv.id))
    assert isinstance(err, stripe.InvalidRequestError)

    other = await draft(client)
    await client.v1.invoices.add_lines_async(other.id, params={"lines": [{"amount": 50}]})
    await client.v1.invoices.finalize_invoice_async(other.id)
    assert (await client.v1.invoices.mark_uncollectible_async(other.id)).status == "uncollectible"
    assert (await client.v1.invoices.void_invoice_async(other.id)).status == "void"
    types = [e["type"] for e in fake.events()]
    assert "invoice.payment_failed" in types and "invoice.voided" in types
    assert "invoice.marked_uncollectible" in types and types.count("invoice.finalized") == 2


# -- auth, modes, accounts -------------------------------------------------------------


async def test_authentication_and_modes(fake: FakeStripe, client: stripe.StripeClient) -> None:
    assert fake.url is not None
    http_client = stripe.AIOHTTPClient()
    try:
        wrong = stripe.StripeClient(
            "sk_test_000000000000wxyz",
            base_addresses={"api": fake.url},
            http_client=http_client,
            max_network_retries=0,
        )
        err = await refused(wrong.v1.invoices.list_async())
        assert isinstance(err, stripe.AuthenticationError) and err.http_status == 401
        assert err.json_body is not None
        assert err.json_body["error"]["type"] == "invalid_request_error"
        assert err.user_message == "Invalid API Key provided: sk_test_************wxyz"

        live = stripe.StripeClient(
            LIVE_KEY,
            base_addresses={"api": fake.url},
            http_client=http_client,
            max_network_retries=0,
        )
        err = await refused(live.v1.customers.retrieve_async("cus_a"))
        assert_error(err, "resource_missing", "id", "exists in test mode", status=404)
        customer = await live.v1.customers.create_async(params={"email": "x@example.com"})
        assert customer.livemode is True and customer.id.startswith("cus_")
        inv = await live.v1.invoices.create_async(params={"customer": customer.id})
        assert inv.livemode is True
        assert fake.invoices() == [] and len(fake.invoices(livemode=True)) == 1
    finally:
        await http_client.close_async()
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{fake.url}/v1/invoices") as response:
            assert response.status == 401
            assert "did not provide an API key" in (await response.json())["error"]["message"]
        auth = aiohttp.BasicAuth(KEY, "")
        async with anonymous.get(f"{fake.url}/v1/customers/cus_a", auth=auth) as response:
            assert response.status == 200 and (await response.json())["id"] == "cus_a"
        async with anonymous.get(f"{fake.url}/v1/nothing", auth=auth) as response:
            assert response.status == 404
            assert "Unrecognized request URL" in (await response.json())["error"]["message"]


async def test_connected_account_scoping(fake: FakeStripe, client: stripe.StripeClient) -> None:
    fake.seed_customer("cus_conn", currency="eur", account="acct_1")
    err = await refused(client.v1.invoices.create_async(params={"customer": "cus_conn"}))
    assert_error(err, "resource_missing", "customer", "No such customer")
    scoped = {"stripe_account": "acct_1"}
    inv = await client.v1.invoices.create_async(params={"customer": "cus_conn"}, options=scoped)
    assert inv.currency == "eur"
    err = await refused(client.v1.invoices.retrieve_async(inv.id))
    assert_error(err, "resource_missing", "invoice", status=404)
    got = await client.v1.invoices.retrieve_async(inv.id, options=scoped)
    assert got.id == inv.id
    found = await client.v1.invoices.list_async(options={"stripe_account": "acct_2"})
    assert found.data == []
    assert [i["id"] for i in fake.invoices(account="acct_1")] == [inv.id]
    assert fake.invoices() == []
    fake.configure(connected_accounts=["acct_1"])
    err = await refused(client.v1.invoices.list_async(options={"stripe_account": "acct_9"}))
    assert isinstance(err, stripe.PermissionError) and err.json_body is not None
    assert err.json_body["error"]["code"] == "account_invalid"
    state = fake.state()
    assert set(state["test"]) >= {"platform", "acct_1"}


# -- idempotency -----------------------------------------------------------------------


async def test_idempotent_replay_and_mismatch(
    fake: FakeStripe, http: aiohttp.ClientSession, client: stripe.StripeClient
) -> None:
    params = {"customer": "cus_a", "metadata": {"bill": "b1"}}
    status, first, headers = await post(http, "/v1/invoices", params, key="key-1")
    assert status == 200 and "Idempotent-Replayed" not in headers
    status, again, headers = await post(http, "/v1/invoices", params, key="key-1")
    assert status == 200 and headers["Idempotent-Replayed"] == "true"
    assert again == first and headers["Original-Request"]
    assert len(fake.invoices()) == 1 and fake.stats["idempotent_replays"] == 1

    status, body, _ = await post(http, "/v1/invoices", {"customer": "cus_b"}, key="key-1")
    assert status == 400 and body["error"]["type"] == "idempotency_error"
    assert body["error"]["message"].startswith(
        "Keys for idempotent requests can only be used with the same parameters they were "
        "first used with."
    )
    status, body, _ = await post(http, "/v1/customers", params, key="key-1")
    assert status == 400 and body["error"]["type"] == "idempotency_error"
    assert "same endpoint" in body["error"]["message"]

    # The SDK: idempotency_key option, IdempotencyError on reuse with other parameters.
    opts = {"idempotency_key": "key-sdk"}
    one = await client.v1.invoices.create_async(params={"customer": "cus_a"}, options=opts)
    two = await client.v1.invoices.create_async(params={"customer": "cus_a"}, options=opts)
    assert one.id == two.id and two.last_response is not None
    assert two.last_response.headers["Idempotent-Replayed"] == "true"
    err = await refused(client.v1.invoices.create_async(params={"customer": "cus_b"}, options=opts))
    assert isinstance(err, stripe.IdempotencyError)

    # Scoped per account: the same key under a connected account executes afresh.
    fake.seed_customer("cus_a", account="acct_1")
    status, other, headers = await post(
        http, "/v1/invoices", params, key="key-1", headers={"Stripe-Account": "acct_1"}
    )
    assert status == 200 and other["id"] != first["id"] and "Idempotent-Replayed" not in headers

    # Keys expire after 24 hours.
    fake.advance_time(24 * 3600 + 1)
    status, later, headers = await post(http, "/v1/invoices", {"customer": "cus_b"}, key="key-1")
    assert status == 200 and later["customer"] == "cus_b" and "Idempotent-Replayed" not in headers
    assert len(fake.invoices()) == 3


async def test_idempotency_saves_execution_errors_not_validation_errors(
    fake: FakeStripe, http: aiohttp.ClientSession
) -> None:
    # A parameter error is refused before execution: not saved, the key stays usable.
    status, body, _ = await post(http, "/v1/invoices", {"customer": "cus_a", "x": "1"}, key="k")
    assert status == 400 and body["error"]["code"] == "parameter_unknown"
    status, created, headers = await post(http, "/v1/invoices", {"customer": "cus_a"}, key="k")
    assert status == 200 and "Idempotent-Replayed" not in headers
    # An error of the executing endpoint is saved and replayed, even once the cause is gone.
    status, body, _ = await post(http, "/v1/invoices", {"customer": "cus_new"}, key="k2")
    assert status == 400 and body["error"]["code"] == "resource_missing"
    fake.seed_customer("cus_new")
    status, replay, headers = await post(http, "/v1/invoices", {"customer": "cus_new"}, key="k2")
    assert status == 400 and replay == body and headers["Idempotent-Replayed"] == "true"
    assert [i["id"] for i in fake.invoices()] == [created["id"]]


async def test_concurrent_request_with_same_key_gets_409(
    fake: FakeStripe, http: aiohttp.ClientSession
) -> None:
    fake.configure(faults={"latency_ms": 200})
    results = await asyncio.gather(
        post(http, "/v1/invoices", {"customer": "cus_a"}, key="same"),
        post(http, "/v1/invoices", {"customer": "cus_a"}, key="same"),
    )
    statuses = sorted(r[0] for r in results)
    assert statuses == [200, 409]
    conflict = next(r[1] for r in results if r[0] == 409)
    assert conflict["error"]["code"] == "idempotency_key_in_use"
    assert len(fake.invoices()) == 1


# -- faults ----------------------------------------------------------------------------


async def test_drop_after_commit_then_retry_replays(
    fake: FakeStripe, http: aiohttp.ClientSession
) -> None:
    fake.configure(
        faults={
            "rules": [
                {
                    "path_prefix": "/v1/invoices",
                    "method": "POST",
                    "action": "drop_after_commit",
                    "count": 1,
                }
            ]
        }
    )
    with pytest.raises(aiohttp.ClientError):
        await post(http, "/v1/invoices", {"customer": "cus_a"}, key="drop-1")
    assert len(fake.invoices()) == 1  # committed although the client never heard back
    status, body, headers = await post(http, "/v1/invoices", {"customer": "cus_a"}, key="drop-1")
    assert status == 200 and headers["Idempotent-Replayed"] == "true"
    assert [i["id"] for i in fake.invoices()] == [body["id"]]
    assert fake.stats["dropped_after_commit"] == 1


async def test_drop_before_commit_then_retry_executes(
    fake: FakeStripe, http: aiohttp.ClientSession
) -> None:
    fake.configure(
        faults={
            "rules": [
                {"path_prefix": "/v1/invoices", "method": "POST", "action": "drop_before_commit"}
            ]
        }
    )
    with pytest.raises(aiohttp.ClientError):
        await post(http, "/v1/invoices", {"customer": "cus_a"}, key="drop-2")
    assert fake.invoices() == []
    status, body, headers = await post(http, "/v1/invoices", {"customer": "cus_a"}, key="drop-2")
    assert status == 200 and "Idempotent-Replayed" not in headers
    assert [i["id"] for i in fake.invoices()] == [body["id"]]


async def test_sdk_sees_dropped_connection_and_retries_with_same_key(fake: FakeStripe) -> None:
    assert fake.url is not None
    fake.configure(
        faults={
            "rules": [
                {
                    "path_prefix": "/v1/invoices",
                    "method": "POST",
                    "action": "drop_after_commit",
                    "count": 2,
                }
            ]
        }
    )
    http_client = stripe.AIOHTTPClient()
    try:
        no_retry = stripe.StripeClient(
            KEY, base_addresses={"api": fake.url}, http_client=http_client, max_network_retries=0
        )
        err = await refused(no_retry.v1.invoices.create_async(params={"customer": "cus_a"}))
        assert isinstance(err, stripe.APIConnectionError) and err.should_retry
        retrying = stripe.StripeClient(
            KEY, base_addresses={"api": fake.url}, http_client=http_client, max_network_retries=2
        )
        inv = await retrying.v1.invoices.create_async(params={"customer": "cus_b"})
    finally:
        await http_client.close_async()
    assert inv.last_response is not None
    assert inv.last_response.headers["Idempotent-Replayed"] == "true"
    assert sorted(i["customer"] for i in fake.invoices()) == ["cus_a", "cus_b"]


async def test_injected_500s_follow_the_seeded_rate(
    fake: FakeStripe, http: aiohttp.ClientSession
) -> None:
    async def run() -> list[int]:
        statuses = []
        for _ in range(200):
            async with http.get("/v1/customers/cus_a") as response:
                statuses.append(response.status)
        return statuses

    fake.configure(faults={"error_rate": 0.25, "seed": 42})
    first = await run()
    assert set(first) == {200, 500} and 0.15 < first.count(500) / 200 < 0.35
    fake.configure(faults={"seed": 42})
    assert await run() == first  # same seed, same faults
    assert fake.stats["injected_errors"] == 2 * first.count(500)
    fake.configure(faults={"error_rate": 1.0})
    for _ in range(5):  # control endpoints never get faults
        async with http.get("/_fake/stats") as response:
            assert response.status == 200


async def test_injected_500_is_replayed_for_its_key_like_stripe(
    fake: FakeStripe, http: aiohttp.ClientSession, client: stripe.StripeClient
) -> None:
    fake.configure(faults={"error_rate": 1.0})
    status, body, headers = await post(http, "/v1/invoices", {"customer": "cus_a"}, key="e1")
    assert status == 500 and body["error"]["type"] == "api_error"
    assert headers["Stripe-Should-Retry"] == "false"
    err = await refused(client.v1.invoices.create_async(params={"customer": "cus_a"}))
    assert isinstance(err, stripe.APIError) and err.http_status == 500
    fake.configure(faults={"error_rate": 0.0})
    status, again, headers = await post(http, "/v1/invoices", {"customer": "cus_a"}, key="e1")
    assert status == 500 and again == body and headers["Idempotent-Replayed"] == "true"
    assert fake.invoices() == []
    # Modelled in front of the idempotency layer instead: the retry executes.
    fake.configure(faults={"rules": [{"status": 503, "replayed": False}]})
    status, body, _ = await post(http, "/v1/invoices", {"customer": "cus_a"}, key="e2")
    assert status == 503
    status, body, headers = await post(http, "/v1/invoices", {"customer": "cus_a"}, key="e2")
    assert status == 200 and "Idempotent-Replayed" not in headers
    assert len(fake.invoices()) == 1


# -- rate limits -----------------------------------------------------------------------


async def test_rate_limit_burst_gets_429_with_retry_after(
    fake: FakeStripe, http: aiohttp.ClientSession, client: stripe.StripeClient
) -> None:
    fake.configure(
        rate_limits={
            "enabled": True,
            "test_per_second": 5,
            "endpoint_per_second": 5,
            "retry_after_seconds": 2,
        }
    )

    async def one() -> tuple[int, dict[str, Any], Any]:
        return await get(http, "/v1/invoices")

    results = await asyncio.gather(*(one() for _ in range(20)))
    limited = [r for r in results if r[0] == 429]
    assert len(limited) >= 10 and {r[0] for r in results} == {200, 429}
    _status, body, headers = limited[0]
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "rate_limit" and headers["Retry-After"] == "2"
    stats = fake.stats
    assert stats["rate_limited"] == len(limited)
    assert stats["max_admitted_per_second"] <= 5 < stats["max_offered_per_second"]
    endpoint = stats["endpoints"]["GET /v1/invoices"]
    assert endpoint["by_status"]["429"] == len(limited) and endpoint["max_admitted_per_second"] <= 5
    err = await refused(client.v1.invoices.list_async())
    assert isinstance(err, stripe.RateLimitError) and err.http_status == 429


async def test_per_endpoint_limit_and_unlimited(
    fake: FakeStripe, http: aiohttp.ClientSession
) -> None:
    fake.configure(rate_limits={"enabled": True, "test_per_second": 100, "endpoint_per_second": 3})
    results = await asyncio.gather(*(get(http, "/v1/invoices") for _ in range(6)))
    limited = [r for r in results if r[0] == 429]
    assert len(limited) == 3
    assert limited[0][2]["Stripe-Rate-Limited-Reason"] == "endpoint-rate"
    status, _, _ = await get(http, "/v1/customers/cus_a")
    assert status == 200  # other endpoints have their own window
    fake.configure(rate_limits={"endpoint_per_second": None})
    results = await asyncio.gather(*(get(http, "/v1/invoices") for _ in range(30)))
    assert {r[0] for r in results} == {200}


# -- search, pending items -------------------------------------------------------------


async def test_search_by_metadata(fake: FakeStripe, client: stripe.StripeClient) -> None:
    a1 = await draft(client, metadata={"bill": "b1", "tenant": "t1"})
    await draft(client, metadata={"bill": "b2", "tenant": "t1"})
    b1 = await client.v1.invoices.create_async(
        params={"customer": "cus_b", "metadata": {"bill": "b1", "tenant": "t2"}}
    )
    search = client.v1.invoices.search_async
    found = await search(params={"query": "metadata['bill']:'b1'"})
    assert found.object == "search_result" and {i.id for i in found.data} == {a1.id, b1.id}
    found = await search(params={"query": "metadata['bill']:'b1' AND customer:'cus_a'"})
    assert [i.id for i in found.data] == [a1.id]
    found = await search(params={"query": "metadata['tenant']:'t1' AND status:'draft'", "limit": 1})
    assert len(found.data) == 1 and found.has_more and found.next_page
    page2 = await search(
        params={
            "query": "metadata['tenant']:'t1' AND status:'draft'",
            "limit": 1,
            "page": found.next_page,
        }
    )
    assert len(page2.data) == 1 and page2.data[0].id != found.data[0].id and not page2.has_more
    assert (await search(params={"query": "status:'open'"})).data == []
    err = await refused(search(params={"query": "colour:'red'"}))
    assert_error(err, None, "query", "unsupported search field")
    err = await refused(search(params={"query": "metadata['bill']:'b1' AND OR"}))
    assert_error(err, None, "query", "invalid")
    # Stripe's search index lags writes; the fake can too.
    fake.configure(search_lag_seconds=60)
    late = await draft(client, metadata={"bill": "b9"})
    assert (await search(params={"query": "metadata['bill']:'b9'"})).data == []
    fake.advance_time(61)
    assert [i.id for i in (await search(params={"query": "metadata['bill']:'b9'"})).data] == [
        late.id
    ]


async def test_pending_items_pulled_in_with_include(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    items = client.v1.invoice_items
    one = await items.create_async(
        params={"customer": "cus_a", "amount": 1000, "description": "setup"}
    )
    two = await items.create_async(
        params={"customer": "cus_a", "quantity": 4, "unit_amount_decimal": "2.5"}
    )
    eur = await items.create_async(params={"customer": "cus_a", "amount": 7, "currency": "eur"})
    await items.create_async(params={"customer": "cus_b", "amount": 9})
    excluded = await draft(client)
    assert excluded.lines.data == [] and excluded.total == 0
    inv = await draft(client, pending_invoice_items_behavior="include")
    assert [line.parent.invoice_item_details.invoice_item for line in inv.lines.data] == [
        one.id,
        two.id,
    ]
    assert inv.total == 1010
    pending = await items.list_async(params={"customer": "cus_a", "pending": True})
    assert [i.id for i in pending.data] == [eur.id]
    attached = await items.list_async(params={"invoice": inv.id})
    assert {i.id for i in attached.data} == {one.id, two.id}
    # Assign a pending item explicitly with add_lines.
    inv = await client.v1.invoices.add_lines_async(
        excluded.id,
        params={
            "lines": [
                {
                    "invoice_item": (
                        await items.create_async(params={"customer": "cus_a", "amount": 5})
                    ).id
                }
            ]
        },
    )
    assert inv.total == 5
    deleted = await items.delete_async(eur.id)
    assert deleted.deleted is True
    assert eur.id not in {i["id"] for i in fake.invoice_items()}


async def test_lists_paginate(client: stripe.StripeClient) -> None:
    ids = [(await draft(client)).id for _ in range(5)]
    page = await client.v1.invoices.list_async(params={"limit": 2, "customer": "cus_a"})
    assert [i.id for i in page.data] == ids[::-1][:2] and page.has_more
    rest = await client.v1.invoices.list_async(
        params={"limit": 10, "starting_after": page.data[-1].id}
    )
    assert [i.id for i in rest.data] == ids[::-1][2:] and not rest.has_more
    every = [i.id async for i in page.auto_paging_iter()]
    assert every == ids[::-1]
    drafts = await client.v1.invoices.list_async(params={"status": "open"})
    assert drafts.data == []


# -- webhooks, control endpoints, CLI, forms ------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[bytes, str]]]]:
    received: list[tuple[bytes, str]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers["Stripe-Signature"]))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/hook", received
    await runner.cleanup()


async def test_webhooks_are_signed(
    fake: FakeStripe, client: stripe.StripeClient, receiver: tuple[str, list[tuple[bytes, str]]]
) -> None:
    url, received = receiver
    secret = "whsec_test_secret"
    fake.configure(webhooks={"url": url, "secret": secret})
    inv = await draft(client)
    await client.v1.invoices.add_lines_async(inv.id, params={"lines": [{"amount": 300}]})
    await client.v1.invoices.finalize_invoice_async(inv.id)
    await client.v1.invoices.pay_async(inv.id)
    await fake.drain_webhooks()
    types = []
    for payload, header in received:
        event = stripe.Webhook.construct_event(payload.decode(), header, secret)
        types.append(event.type)
        assert event.data.object.id == inv.id
    assert types == [
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(received[0][0].decode(), received[0][1], "whsec_wrong")
    fake.configure(webhooks={"url": "http://127.0.0.1:1/unreachable"})
    other = await draft(client)
    await client.v1.invoices.delete_async(other.id)
    await fake.drain_webhooks()  # a failing endpoint is logged, never raised
    assert any("error" in d for d in fake.webhook_deliveries)


async def test_control_endpoints(fake: FakeStripe, http: aiohttp.ClientSession) -> None:
    async with http.post(
        "/_fake/customers",
        json={
            "customers": [{"id": "cus_x", "currency": "EUR"}, {"id": "cus_y", "account": "acct_7"}]
        },
    ) as response:
        assert response.status == 200
    async with http.post(
        "/_fake/config",
        json={
            "rate_limits": {"test_per_second": 50},
            "faults": {
                "latency_ms": 1,
                "rules": [{"path_prefix": "/v1/customers", "status": 429, "count": 1}],
            },
        },
    ) as response:
        config = await response.json()
        assert config["rate_limits"]["test_per_second"] == 50
        assert config["faults"]["rules"][0]["status"] == 429
    async with http.post("/_fake/config", json={"nope": 1}) as response:
        assert response.status == 400
    status, body, _headers = await get(http, "/v1/customers/cus_x")
    assert status == 429 and body["error"]["code"] == "rate_limit"
    status, body, _ = await get(http, "/v1/customers/cus_x")
    assert status == 200 and body["currency"] == "eur"
    async with http.get("/_fake/state") as response:
        state = await response.json()
    assert set(state["test"]["platform"]["customers"][0]) >= {"id", "object", "created"}
    assert state["test"]["acct_7"]["customers"][0]["id"] == "cus_y"
    async with http.get("/_fake/stats") as response:
        stats = await response.json()
    assert stats["endpoints"]["GET /v1/customers/{id}"]["by_status"] == {"429": 1, "200": 1}
    async with http.post("/_fake/clock", json={"advance_seconds": 10}) as response:
        assert (await response.json())["now"] >= fake.now() - 1
    async with http.post("/_fake/reset") as response:
        assert response.status == 200
    assert fake.customers() == [] and fake.stats["requests"] == 0


def test_cli_seeds_customers_in_each_mode() -> None:
    args = cli.parse_args(
        [
            "--port",
            "0",
            "--keys",
            f"{KEY},{LIVE_KEY}",
            "--customers",
            "cus_a,cus_b",
            "--accounts",
            "acct_1",
            "--currency",
            "usd",
            "--no-rate-limits",
        ]
    )
    fake = cli.build(args)
    assert [c["id"] for c in fake.customers()] == ["cus_a", "cus_b"]
    assert [c["id"] for c in fake.customers(livemode=True)] == ["cus_a", "cus_b"]
    assert [c["id"] for c in fake.customers("acct_1")] == ["cus_a", "cus_b"]
    assert fake.config.rate_limits.enabled is False


def test_form_decoding() -> None:
    body = (
        "customer=cus_a&metadata[order]=42&metadata[empty]=&expand[]=lines&expand[]=customer"
        "&lines[0][price_data][unit_amount_decimal]=1.5&lines[0][quantity]=2"
        "&lines[1][amount]=-5&custom_fields[0][name]=PO&custom_fields[0][value]=1"
    )
    decoded = forms.decode(body)
    assert decoded["metadata"] == {"order": "42", "empty": ""}
    assert decoded["expand"] == {"0": "lines", "1": "customer"}
    assert decoded["lines"]["0"]["price_data"] == {"unit_amount_decimal": "1.5"}
    assert decoded["custom_fields"] == {"0": {"name": "PO", "value": "1"}}
    grouped = forms.decode(
        "lines[][id]=il_1&lines[][behavior]=delete&lines[][id]=il_2&lines[][behavior]=unassign"
    )
    assert grouped["lines"] == {
        "0": {"id": "il_1", "behavior": "delete"},
        "1": {"id": "il_2", "behavior": "unassign"},
    }
    assert forms.decode("metadata=") == {"metadata": ""}
    nested = {"lines": [{"price_data": {"product": "p"}, "metadata": {"0": "x"}}], "flag": True}
    assert forms.decode("&".join(f"{k}={v}" for k, v in forms.encode(nested))) == {
        "lines": {"0": {"price_data": {"product": "p"}, "metadata": {"0": "x"}}},
        "flag": "true",
    }
    assert json.dumps(decoded)  # plain JSON-able values only


async def test_expand_customer(client: stripe.StripeClient) -> None:
    inv = await draft(client)
    got = await client.v1.invoices.retrieve_async(inv.id, params={"expand": ["customer"]})
    assert isinstance(got.customer, stripe.Customer) and got.customer.email == "a@example.com"
    page = await client.v1.invoices.list_async(params={"expand": ["data.customer"]})
    assert isinstance(page.data[0].customer, stripe.Customer)
    err = await refused(client.v1.invoices.retrieve_async(inv.id, params={"expand": ["lines"]}))
    assert_error(err, None, "expand", "This property cannot be expanded (lines).")
