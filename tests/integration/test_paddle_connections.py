"""Connecting a Paddle configuration verifies the credential through the control plane:
the key's environment first (no call), then one authenticated read from the local
Paddle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from fakes.paddle import FakePaddle
from services.paddle_sink.client import API_BASE_ENV
from shared.contracts import Destination
from shared.settings import Settings
from tests.support.control import Api, api_for

pytestmark = pytest.mark.kafka

SANDBOX_KEY = "pdl_sdbx_apikey_connections_good"
LIVE_KEY = "pdl_live_apikey_connections_good"


@pytest.fixture
async def paddle() -> AsyncIterator[FakePaddle]:
    fake = FakePaddle([SANDBOX_KEY])  # a sandbox: live keys do not work here
    yield fake
    await fake.stop()


@pytest.fixture
async def api(
    settings: Settings, paddle: FakePaddle, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    url = await paddle.start()
    monkeypatch.setenv(API_BASE_ENV[Destination.PADDLE_SANDBOX], url)
    monkeypatch.setenv(API_BASE_ENV[Destination.PADDLE], url)
    async with api_for(settings) as client:
        yield client


async def attach(api: Api, config_id: str, cred_id: str) -> tuple[int, Any]:
    return await api.call(
        "POST",
        f"/integrationconfigs/{config_id}/credential",
        json={"integrationCredentialsId": cred_id},
    )


async def test_connecting_refuses_a_key_of_the_other_environment(
    api: Api, paddle: FakePaddle
) -> None:
    keys = {
        "sandbox": SANDBOX_KEY,
        "live": LIVE_KEY,
        "revoked": "pdl_sdbx_apikey_revoked",
        "junk": "not-a-key",
    }
    for cred_id, key in keys.items():
        body = {"id": cred_id, "type": "PADDLE", "apiKey": key}
        assert (await api.call("POST", "/integrationcredentials", json=body))[0] == 201
    for cfg_id, destination in (("cfg-sandbox", "PADDLE_SANDBOX"), ("cfg-live", "PADDLE")):
        body = {"id": cfg_id, "destination": destination}
        assert (await api.call("POST", "/integrationconfigs", json=body))[0] == 201
    cases = {
        (
            "cfg-live",
            "sandbox",
        ): "sandbox key (pdl_sdbx_apikey_...) but the configuration is PADDLE",
        ("cfg-sandbox", "live"): "live key (pdl_live_apikey_...) but the configuration is "
        "PADDLE_SANDBOX",
        ("cfg-sandbox", "junk"): "not a Paddle API key",
    }
    for (cfg, cred), why in cases.items():
        status, body = await attach(api, cfg, cred)
        assert status == 400 and why in body["error"]["message"], body
    assert paddle.stats["requests"] == 0  # the environment is checked before any call

    status, body = await attach(api, "cfg-sandbox", "revoked")
    assert status == 400 and "Paddle refused the key" in body["error"]["message"]
    assert "revoked" not in body["error"]["message"]

    status, cfg = await attach(api, "cfg-sandbox", "sandbox")
    assert status == 200 and cfg["integrationCredentialsId"] == "sandbox"
    status, conn = await api.call("GET", "/integrationconfigs/cfg-sandbox/connection", as_="read")
    assert conn["status"] == "CONNECTED" and conn["lastVerifiedAt"] is not None
    assert paddle.stats["requests"] == 2  # the revoked key and the good one
