"""The local Paddle: Paddle's OpenAPI document, the rules it cannot say, keys per
environment, the per-IP limit, pagination, faults and inspection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fakes.paddle import FakePaddle

KEY = "pdl_sdbx_apikey_01test"
LIVE_KEY = "pdl_live_apikey_01test"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def paddle(clock: Clock) -> AsyncIterator[FakePaddle]:
    fake = FakePaddle([KEY, LIVE_KEY], monotonic=clock, rate_limits={"enabled": False})
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http(paddle: FakePaddle) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=paddle.url, headers={"Authorization": f"Bearer {KEY}", "Paddle-Version": "1"}
    ) as session:
        yield session


def item(amount: str = "1000", quantity: int = 1, **price: Any) -> dict[str, Any]:
    return {
        "quantity": quantity,
        "price": {
            "description": "API calls",
            "unit_price": {"amount": amount, "currency_code": "USD"},
            "product": {"name": "Usage", "tax_category": "standard"},
            **price,
        },
    }


def manual(ids: dict[str, Any], *items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "collection_mode": "manual",
        "currency_code": "USD",
        "customer_id": ids["customer_id"],
        "address_id": ids["address_id"],
        "billing_details": {
            "payment_terms": {"interval": "day", "frequency": 30},
            "purchase_order_number": "PO-1",
        },
        "items": list(items) or [item()],
        "custom_data": {"billsync_bill_id": "b1"},
        **extra,
    }


async def post(http: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, Any]:
    async with http.post(path, json=body) as resp:
        return resp.status, await resp.json()


async def patch(http: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, Any]:
    async with http.patch(path, json=body) as resp:
        return resp.status, await resp.json()


def fields_of(answer: dict[str, Any]) -> list[str]:
    return [e["field"] for e in answer["error"].get("errors", [])]


async def test_manual_transaction_is_ready_with_totals(
    paddle: FakePaddle, http: aiohttp.ClientSession
) -> None:
    ids = paddle.seed_customer(name="Acme")
    status, answer = await post(http, "/transactions", manual(ids, item("1250", 3), item("99", 1)))
    assert status == 201, answer
    txn = answer["data"]
    assert txn["id"].startswith("txn_") and len(txn["id"]) == 30
    assert txn["status"] == "ready"  # complete: editable until billed
    assert txn["details"]["totals"]["grand_total"] == "3849"
    assert txn["billing_details"]["purchase_order_number"] == "PO-1"
    assert txn["items"][0]["price"]["quantity"] == {"minimum": 1, "maximum": 100}
    assert answer["meta"]["request_id"]
    assert paddle.state()["transactions"][0]["id"] == txn["id"]


async def test_body_is_checked_against_the_openapi_document(
    paddle: FakePaddle, http: aiohttp.ClientSession
) -> None:
    ids = paddle.seed_customer()
    status, answer = await post(http, "/transactions", manual(ids, item(quantity=0)))
    assert status == 400
    error = answer["error"]
    assert {"type", "code", "detail", "documentation_url", "errors"} <= set(error)
    assert error["type"] == "request_error" and error["code"] == "invalid_field"
    assert fields_of(answer) == ["items[0].quantity"]
    assert answer["meta"]["request_id"]
    status, answer = await post(
        http, "/transactions", manual(ids, item(), billing_details={"payment_terms": {}})
    )
    assert status == 400 and "billing_details" in fields_of(answer)[0]
    status, answer = await post(http, "/transactions", manual(ids, item(), collection_mode="x"))
    assert status == 400 and fields_of(answer) == ["collection_mode"]


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"billing_details": None}, "billing_details.payment_terms", "invalid_field"),
        ({"currency_code": "JPY"}, "currency_code", "transaction_invalid_currency_for_manual"),
        ({"items": [item(amount="12.50")]}, "items[0].price.unit_price.amount", "invalid_field"),
        ({"items": [item(quantity=101)]}, "items[0].quantity", "transaction_item_quantity"),
        ({"items": [item()] * 101}, "items", "invalid_field"),
    ],
)
async def test_rules_the_document_cannot_say(
    paddle: FakePaddle,
    http: aiohttp.ClientSession,
    change: dict[str, Any],
    field: str,
    code: str,
) -> None:
    ids = paddle.seed_customer()
    body = {**manual(ids), **change}
    status, answer = await post(http, "/transactions", body)
    if field == "billing_details.payment_terms":
        # Without billing details the transaction is only a draft; it cannot be billed.
        assert status == 201 and answer["data"]["status"] == "draft"
        status, answer = await patch(
            http, f"/transactions/{answer['data']['id']}", {"status": "billed"}
        )
    assert status == 400, answer
    assert answer["error"]["code"].startswith(code)
    assert field in fields_of(answer)


async def test_quantity_range_on_the_price_allows_more_than_100(
    paddle: FakePaddle, http: aiohttp.ClientSession
) -> None:
    ids = paddle.seed_customer()
    wide = item("7", 150)
    wide["price"]["quantity"] = {"minimum": 1, "maximum": 150}
    status, answer = await post(http, "/transactions", manual(ids, wide))
    assert status == 201, answer
    assert answer["data"]["details"]["totals"]["total"] == "1050"


async def test_manual_collection_needs_a_named_customer_with_an_address(
    paddle: FakePaddle, http: aiohttp.ClientSession
) -> None:
    nameless = paddle.seed_customer(name=None)
    status, answer = await post(http, "/transactions", manual(nameless))
    assert answer["data"]["status"] == "draft"
    status, answer = await patch(
        http, f"/transactions/{answer['data']['id']}", {"status": "billed"}
    )
    assert status == 400 and "customer_id" in fields_of(answer)
    other = paddle.seed_customer()
    body = manual(paddle.seed_customer(), address_id=other["address_id"])
    status, answer = await post(http, "/transactions", body)
    assert status == 400 and fields_of(answer) == ["address_id"]


async def test_billed_transactions_are_immutable(
    paddle: FakePaddle, http: aiohttp.ClientSession
) -> None:
    ids = paddle.seed_customer()
    _, answer = await post(http, "/transactions", manual(ids))
    path = f"/transactions/{answer['data']['id']}"
    status, answer = await patch(http, path, {"items": [item("5000", 2)]})
    assert status == 200 and answer["data"]["details"]["totals"]["total"] == "10000"
    status, answer = await patch(http, path, {"status": "billed"})
    assert status == 200 and answer["data"]["status"] == "billed"
    assert answer["data"]["invoice_number"]
    status, answer = await patch(http, path, {"items": [item("1", 1)]})
    assert status == 400 and answer["error"]["code"] == "transaction_immutable"
    async with http.get(path) as resp:
        assert (await resp.json())["data"]["details"]["totals"]["total"] == "10000"


async def test_keys_work_only_in_their_environment(paddle: FakePaddle) -> None:
    async def status_with(headers: dict[str, str]) -> tuple[int, str]:
        async with aiohttp.ClientSession(base_url=paddle.url, headers=headers) as s:
            async with s.get("/transactions") as resp:
                return resp.status, (await resp.json())["error"]["code"]

    assert await status_with({}) == (401, "authentication_missing")
    assert await status_with({"Authorization": f"Bearer {LIVE_KEY}"}) == (403, "forbidden")
    unknown = {"Authorization": "Bearer pdl_sdbx_apikey_unknown"}
    assert await status_with(unknown) == (403, "forbidden")
    paddle.configure(environment="live")
    assert await status_with({"Authorization": f"Bearer {KEY}"}) == (403, "forbidden")
    async with aiohttp.ClientSession(
        base_url=paddle.url, headers={"Authorization": f"Bearer {LIVE_KEY}"}
    ) as s:
        async with s.get("/transactions") as resp:
            assert resp.status == 200
    assert LIVE_KEY not in str(paddle.config.to_json())


async def test_cursor_pagination_30_per_page_and_filters(
    paddle: FakePaddle, http: aiohttp.ClientSession
) -> None:
    ids = paddle.seed_customer()
    other = paddle.seed_customer()
    made = [(await post(http, "/transactions", manual(ids)))[1]["data"]["id"] for _ in range(65)]
    await post(http, "/transactions", manual(other))
    seen: list[str] = []
    url = f"/transactions?customer_id={ids['customer_id']}&order_by=created_at[DESC]"
    pages = 0
    while url:
        async with http.get(url) as resp:
            answer = await resp.json()
        pages += 1
        seen += [t["id"] for t in answer["data"]]
        pagination = answer["meta"]["pagination"]
        assert pagination["per_page"] == 30
        url = pagination["next"] if pagination["has_more"] else ""
    assert pages == 3 and seen == made[::-1]
    async with http.get("/transactions?per_page=31") as resp:
        assert resp.status == 400
    since = paddle.transaction(made[60])["created_at"]
    async with http.get(
        "/transactions",
        params={"customer_id": ids["customer_id"], "created_at[GTE]": since},
    ) as resp:
        assert [t["id"] for t in (await resp.json())["data"]] == sorted(made[60:])


async def test_per_ip_limit_answers_429_and_blocks_for_60_seconds(
    paddle: FakePaddle, http: aiohttp.ClientSession, clock: Clock
) -> None:
    paddle.configure(rate_limits={"enabled": True, "per_window": 5})
    for _ in range(5):
        async with http.get("/transactions") as resp:
            assert resp.status == 200
    async with http.get("/transactions") as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "60"
        assert (await resp.json())["error"]["code"] == "too_many_requests"
    clock.now += 61  # the window has passed, but the block lasts 60 s from the 429
    async with http.get("/transactions") as resp:
        assert resp.status == 200
    paddle.configure(rate_limits={"per_window": 1})
    async with http.get("/transactions") as resp:
        assert resp.status == 429
    clock.now += 30
    async with http.get("/transactions") as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "30"
    assert paddle.stats["rate_limited"] == 3


async def test_faults_drop_after_commit_and_5xx(
    paddle: FakePaddle, http: aiohttp.ClientSession
) -> None:
    ids = paddle.seed_customer()
    paddle.configure(
        faults={"rules": [{"path_prefix": "/transactions", "action": "drop_after_commit"}]}
    )
    with pytest.raises(aiohttp.ClientError):
        await post(http, "/transactions", manual(ids))
    assert len(paddle.transactions()) == 1  # committed before the line dropped
    paddle.configure(faults={"rules": [{"path_prefix": "/transactions", "status": 503}]})
    status, answer = await post(http, "/transactions", manual(ids))
    assert status == 503 and answer["error"]["type"] == "api_error"
    assert len(paddle.transactions()) == 1
    assert paddle.stats["dropped_after_commit"] == 1
    paddle.configure(
        faults={"rules": [{"path_prefix": "/transactions", "action": "drop_before_commit"}]}
    )
    with pytest.raises(aiohttp.ClientError):
        await post(http, "/transactions", manual(ids))
    assert len(paddle.transactions()) == 1  # nothing written
    paddle.configure(faults={"latency_ms": 50, "rules": []})
    started = asyncio.get_running_loop().time()
    status, _ = await post(http, "/transactions", manual(ids))
    assert status == 201 and asyncio.get_running_loop().time() - started >= 0.05


async def test_inspect_and_seed_over_http(paddle: FakePaddle) -> None:
    async with aiohttp.ClientSession(base_url=paddle.url) as s:
        async with s.post("/_fake/customers", json={"name": "Seeded", "business": "B"}) as r:
            ids = await r.json()
        async with s.get("/_fake/state") as r:
            state = await r.json()
        assert state["customers"][0]["id"] == ids["customer_id"]
        assert state["businesses"][0]["customer_id"] == ids["customer_id"]
        async with s.post("/_fake/config", json={"nope": 1}) as r:
            assert r.status == 400
        async with s.get("/_fake/stats") as r:
            assert (await r.json())["requests"] == 0


async def test_customers_addresses_businesses_through_the_api(
    http: aiohttp.ClientSession,
) -> None:
    status, answer = await post(http, "/customers", {"email": "x@example.com", "name": "X"})
    assert status == 201
    cid = answer["data"]["id"]
    status, answer = await post(http, f"/customers/{cid}/addresses", {"country_code": "GB"})
    assert status == 201 and answer["data"]["customer_id"] == cid
    status, answer = await post(http, f"/customers/{cid}/businesses", {"name": "X Ltd"})
    assert status == 201
    status, answer = await post(http, "/customers/ctm_nope/addresses", {"country_code": "GB"})
    assert status == 404 and answer["error"]["code"] == "not_found"


async def test_only_paddle_version_1(paddle: FakePaddle, http: aiohttp.ClientSession) -> None:
    async with http.get("/transactions", headers={"Paddle-Version": "2"}) as resp:
        assert resp.status == 400
        assert fields_of(await resp.json()) == ["Paddle-Version"]
    async with http.get("/transactions") as resp:
        assert resp.status == 200
    assert paddle.stats["paddle_versions"] == {"2": 1, "1": 1}
