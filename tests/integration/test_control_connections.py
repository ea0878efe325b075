"""Connecting verifies the credential: the key's mode, then one cheap authenticated call
to the (local) Stripe; the connection status says when it was last verified and why not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from fakes.stripe import FakeStripe
from services.stripe_sink.client import API_BASE_ENV
from shared.settings import Settings
from tests.support.control import Api, api_for

pytestmark = pytest.mark.kafka

TEST_KEY = "sk_test_connections_good_01"
LIVE_KEY = "sk_live_connections_good_01"
PLACEHOLDER = "sk_test_placeholder_not_a_real_key"


@pytest.fixture
async def stripe() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe(api_keys=[TEST_KEY, LIVE_KEY])
    yield fake
    await fake.stop()


@pytest.fixture
async def api(
    settings: Settings, stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    monkeypatch.setenv(API_BASE_ENV, await stripe.start())
    async with api_for(settings) as client:
        yield client


async def _setup(api: Api, **creds: str) -> None:
    for cred_id, key in creds.items():
        body = {"id": cred_id, "type": "STRIPE", "apiKey": key}
        assert (await api.call("POST", "/integrationcredentials", json=body))[0] == 201
    for cfg_id, destination in (("cfg-test", "STRIPE_TEST"), ("cfg-live", "STRIPE")):
        body = {"id": cfg_id, "destination": destination}
        assert (await api.call("POST", "/integrationconfigs", json=body))[0] == 201


async def attach(api: Api, config_id: str, cred_id: str) -> tuple[int, Any]:
    return await api.call(
        "POST",
        f"/integrationconfigs/{config_id}/credential",
        json={"integrationCredentialsId": cred_id},
    )


async def test_connecting_refuses_keys_that_do_not_work(api: Api, stripe: FakeStripe) -> None:
    await _setup(api, good=TEST_KEY, live=LIVE_KEY, placeholder=PLACEHOLDER, junk="not-a-key")
    before = stripe.stats["requests"]
    cases = {
        ("cfg-test", "live"): "live mode key but the configuration is STRIPE_TEST",
        ("cfg-live", "good"): "test mode key but the configuration is STRIPE",
        ("cfg-test", "junk"): "not a Stripe secret or restricted key",
    }
    for (cfg, cred), why in cases.items():
        status, body = await attach(api, cfg, cred)
        assert status == 400 and why in body["error"]["message"], body
    assert stripe.stats["requests"] == before  # the mode is checked before any call

    status, body = await attach(api, "cfg-test", "placeholder")
    assert status == 400 and "Stripe refused the key" in body["error"]["message"]
    assert "****" not in str(body) and "placeholder" not in body["error"]["message"]
    status, cfg = await api.call("GET", "/integrationconfigs/cfg-test")
    assert "integrationCredentialsId" not in cfg  # a refused key is not attached

    status, cfg = await attach(api, "cfg-test", "good")
    assert status == 200 and cfg["integrationCredentialsId"] == "good"
    status, conn = await api.call("GET", "/integrationconfigs/cfg-test/connection", as_="read")
    assert conn["status"] == "CONNECTED" and conn["reason"] is None
    assert conn["lastVerifiedAt"] is not None
    status, cfg = await attach(api, "cfg-live", "live")
    assert status == 200


async def test_status_after_rotation_and_on_demand_verification(
    api: Api, stripe: FakeStripe
) -> None:
    await _setup(api, good=TEST_KEY)
    assert (await attach(api, "cfg-test", "good"))[0] == 200
    path = "/integrationconfigs/cfg-test/connection"
    # Rotated to a placeholder: not verified since, then verified and FAILED with the why.
    await api.call("PUT", "/integrationcredentials/good", json={"apiKey": PLACEHOLDER})
    status, conn = await api.call("GET", path)
    assert conn["status"] == "UNVERIFIED" and "connection/verify" in conn["reason"]
    status, conn = await api.call("POST", path + "/verify")
    assert status == 200 and conn["status"] == "FAILED"
    assert "authentication failed" in conn["reason"] and conn["lastVerifiedAt"]
    status, _ = await api.call("POST", path + "/verify", as_="read")
    assert status == 403

    # Stripe unreachable: 502, nothing recorded (the last outcome stands).
    await api.call("PUT", "/integrationcredentials/good", json={"apiKey": TEST_KEY})
    await stripe.stop()
    status, body = await api.call("POST", path + "/verify")
    assert status == 502 and "could not reach Stripe" in body["error"]["message"]
    status, conn = await api.call("GET", path)
    assert conn["status"] == "UNVERIFIED"
