"""The generic batching fake behaves like the providers it stands for: per-item answers,
upsert by reference, per-tenant limits in headers and 429s, rotating refresh tokens."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fakes.batching import FakeBatching

AUTH = {"Authorization": "Bearer tok-test", "Tenant-Id": "tenant-1"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeBatching]:
    fake = FakeBatching(window_calls=3, window_seconds=60, concurrent=5, daily=100)
    await fake.start()
    yield fake
    await fake.stop()


def item(ref: str, total: str = "10.00", **extra: Any) -> dict[str, Any]:
    return {"reference": ref, "customer": "c-1", "currency": "USD", "total": total, **extra}


async def post(
    fake: FakeBatching, items: list[dict[str, Any]], headers: dict[str, str] = AUTH
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{fake.url}/v1/invoices/batch", json={"invoices": items}, headers=headers
        ) as resp:
            return resp.status, await resp.json(), dict(resp.headers)


async def test_each_item_is_answered_on_its_own_and_upserted_by_reference(
    fake: FakeBatching,
) -> None:
    status, body, headers = await post(fake, [item("a"), item("b", "99999999"), item("c")])
    assert status == 200
    a, b, c = body["results"]
    assert a["status"] == "created" and c["status"] == "created" and b["errors"]
    assert headers["X-MinLimit-Remaining"] == "2" and headers["X-DayLimit-Remaining"] == "99"
    status, body, _ = await post(fake, [item("a", "12.00")])
    assert body["results"][0] == {"reference": "a", "id": a["id"], "status": "updated"}
    assert fake.for_reference("a") == fake.invoices[a["id"]]
    fake.invoices[a["id"]]["status"] = "FINALIZED"
    _, body, _ = await post(fake, [item("a", "13.00")])
    assert body["results"][0]["errors"][0]["code"] == "locked"


async def test_window_limit_is_a_429_with_retry_after_per_tenant(fake: FakeBatching) -> None:
    for _ in range(3):
        assert (await post(fake, [item("x")]))[0] == 200
    status, _, headers = await post(fake, [item("x")])
    assert status == 429 and headers["X-Rate-Limit-Problem"] == "minute"
    assert float(headers["Retry-After"]) > 0
    other = {**AUTH, "Tenant-Id": "tenant-2"}
    assert (await post(fake, [item("x")], other))[0] == 200
    assert fake.stats["rate_limited"] == 1


async def test_concurrent_limit(fake: FakeBatching) -> None:
    fake.config.concurrent = 1
    fake.config.window_calls = 100
    fake.config.latency = 0.2
    results = await asyncio.gather(*(post(fake, [item(f"r{i}")]) for i in range(3)))
    assert sorted(r[0] for r in results) == [200, 429, 429]
    assert fake.stats["max_concurrent"] == 1


async def test_too_large_batch_and_bad_token(fake: FakeBatching) -> None:
    fake.config.max_batch = 2
    assert (await post(fake, [item("a"), item("b"), item("c")]))[0] == 400
    assert (await post(fake, [item("a")], {**AUTH, "Authorization": "Bearer nope"}))[0] == 401


async def test_refresh_tokens_rotate_and_the_used_one_keeps_its_grace(fake: FakeBatching) -> None:
    first = fake.issue_refresh_token()
    basic = "Basic " + base64.b64encode(b"client-1:secret-1").decode()

    async def refresh(token: str) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{fake.url}/oauth/token",
                headers={"Authorization": basic},
                data={"grant_type": "refresh_token", "refresh_token": token},
            ) as resp:
                return resp.status, await resp.json()

    status, tokens = await refresh(first)
    assert status == 200 and tokens["refresh_token"] != first
    assert (await refresh(first))[0] == 200  # grace: the used token still works
    fake.config.refresh_grace = 0
    _, newer = await refresh(tokens["refresh_token"])
    assert (await refresh(tokens["refresh_token"]))[1] == {"error": "invalid_grant"}
    headers = {"Authorization": f"Bearer {newer['access_token']}", "Tenant-Id": "t"}
    assert (await post(fake, [item("z")], headers))[0] == 200
