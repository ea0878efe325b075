"""OAuth authorization-code flows (Stripe Connect, Xero) against a local fake provider."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import pytest

from shared.credentials import CredentialCipher, StoredCredential, StripeCredential, XeroCredential
from shared.credentials.store import unseal
from shared.settings import Settings
from tests.support.control import (
    STRIPE_ACCESS,
    XERO_ACCESS,
    XERO_REFRESH,
    Api,
    FakeProvider,
    api_for,
    fake_oauth_provider,
)
from tests.support.kafka import read_topic

pytestmark = pytest.mark.kafka
PLATFORM_KEY = "sk_test_platform_key_for_exchange"
XERO_SECRET = "xero-app-client-secret-value"


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    async with fake_oauth_provider() as fake:
        yield fake


@pytest.fixture
async def api(settings: Settings, provider: FakeProvider) -> AsyncIterator[Api]:
    async with api_for(
        settings,
        stripe_connect_client_id="ca_test_client",
        stripe_connect_secret_key=PLATFORM_KEY,
        stripe_connect_authorize_url="https://connect.example/authorize",
        stripe_connect_token_url=f"{provider.base_url}/stripe/token",
        xero_client_id="xero-app",
        xero_client_secret=XERO_SECRET,
        xero_authorize_url="https://login.example/authorize",
        xero_token_url=f"{provider.base_url}/xero/token",
        xero_connections_url=f"{provider.base_url}/xero/connections",
    ) as client:
        yield client


async def _start(api: Api, provider: str, config_id: str) -> dict[str, list[str]]:
    status, body = await api.call("GET", f"/oauth/{provider}/start?configId={config_id}")
    assert status == 200, body
    assert body["redirectUri"] == f"{api.handle.base_url}/oauth/{provider}/callback"
    return parse_qs(urlparse(body["authorizeUrl"]).query)


async def test_stripe_connect_flow(api: Api, provider: FakeProvider, settings: Settings) -> None:
    await api.call(
        "POST", "/integrationconfigs", json={"id": "cfg-s", "destination": "STRIPE_TEST"}
    )
    params = await _start(api, "stripe", "cfg-s")
    assert params["client_id"] == ["ca_test_client"] and params["scope"] == ["read_write"]
    assert params["response_type"] == ["code"]
    state = params["state"][0]

    # The callback is open (the browser has no token); the signed state authorises it.
    status, done = await api.call(
        "GET", f"/oauth/stripe/callback?code=good-code&state={state}", as_=None
    )
    assert status == 200, done
    assert done == {
        "integrationConfigId": "cfg-s",
        "integrationCredentialsId": "oauth-stripe-cfg-s",
        "status": "CONNECTED",
    }
    exchange = provider.exchanges[-1]
    assert exchange["grant_type"] == "authorization_code" and exchange["code"] == "good-code"
    assert exchange["auth"] == "Basic " + base64.b64encode(f"{PLATFORM_KEY}:".encode()).decode()

    status, conn = await api.call("GET", "/integrationconfigs/cfg-s/connection")
    assert conn["status"] == "CONNECTED"
    status, cred = await api.call("GET", "/integrationcredentials/oauth-stripe-cfg-s")
    assert cred["connectedAccountId"] == "acct_1Connected" and cred["secretsSet"] == ["apiKey"]

    records = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.name("credentials")
    )
    stored = StoredCredential.model_validate_json(records[-1].value or b"")
    credential = unseal(stored, CredentialCipher(api.handle.credentials_key))
    assert isinstance(credential, StripeCredential)
    assert credential.api_key.get_secret_value() == STRIPE_ACCESS

    # A state works once; a forged or foreign one never.
    status, body = await api.call(
        "GET", f"/oauth/stripe/callback?code=good-code&state={state}", as_=None
    )
    assert status == 400 and "already completed" in body["error"]["message"]
    status, body = await api.call("GET", f"/oauth/xero/callback?code=c&state={state}", as_=None)
    assert status == 400 and "issued for stripe" in body["error"]["message"]
    forged = state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB")
    status, _ = await api.call("GET", f"/oauth/stripe/callback?code=c&state={forged}", as_=None)
    assert status == 400

    # The provider refuses the code: 502 with its error code, never the code itself.
    state = (await _start(api, "stripe", "cfg-s"))["state"][0]
    status, body = await api.call(
        "GET", f"/oauth/stripe/callback?code=stolen-code&state={state}", as_=None
    )
    assert status == 502 and body["error"]["code"] == "provider_error"
    assert "invalid_grant" in body["error"]["message"] and "stolen" not in body["error"]["message"]
    status, body = await api.call("GET", "/oauth/stripe/callback?error=access_denied", as_=None)
    assert status == 400 and "access_denied" in body["error"]["message"]

    # Live-mode account for a test-mode configuration: refused.
    provider.livemode = True
    state = (await _start(api, "stripe", "cfg-s"))["state"][0]
    status, body = await api.call(
        "GET", f"/oauth/stripe/callback?code=good-code&state={state}", as_=None
    )
    assert status == 400 and "live mode" in body["error"]["message"]


async def test_xero_flow_and_refusals(api: Api, provider: FakeProvider, settings: Settings) -> None:
    await api.call("POST", "/integrationconfigs", json={"id": "cfg-x", "destination": "XERO"})
    await api.call("POST", "/integrationconfigs", json={"id": "cfg-p", "destination": "PADDLE"})
    params = await _start(api, "xero", "cfg-x")
    assert "offline_access" in params["scope"][0]
    status, done = await api.call(
        "GET", f"/oauth/xero/callback?code=xero-code&state={params['state'][0]}", as_=None
    )
    assert status == 200, done
    exchange = provider.exchanges[-1]
    assert exchange["redirect_uri"] == f"{api.handle.base_url}/oauth/xero/callback"
    assert (
        exchange["auth"] == "Basic " + base64.b64encode(f"xero-app:{XERO_SECRET}".encode()).decode()
    )

    status, cfg = await api.call("GET", "/integrationconfigs/cfg-x")
    assert cfg["integrationCredentialsId"] == "oauth-xero-cfg-x"
    status, cred = await api.call("GET", "/integrationcredentials/oauth-xero-cfg-x")
    assert cred["tenantId"] == "tenant-42" and "Demo Co" in cred["name"]
    records = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.name("credentials")
    )
    credential = unseal(
        StoredCredential.model_validate_json(records[-1].value or b""),
        CredentialCipher(api.handle.credentials_key),
    )
    assert isinstance(credential, XeroCredential)
    assert credential.refresh_token is not None
    assert credential.refresh_token.get_secret_value() == XERO_REFRESH

    # Connecting again rotates the same credential.
    params = await _start(api, "xero", "cfg-x")
    await api.call("GET", f"/oauth/xero/callback?code=again&state={params['state'][0]}", as_=None)
    status, cred = await api.call("GET", "/integrationcredentials/oauth-xero-cfg-x")
    assert cred["version"] == 2

    status, body = await api.call("GET", "/oauth/stripe/start?configId=cfg-p")
    assert status == 400 and "PADDLE" in body["error"]["message"]
    status, _ = await api.call("GET", "/oauth/xero/start?configId=nope")
    assert status == 404
    status, _ = await api.call("GET", "/oauth/xero/start")
    assert status == 400
    status, _ = await api.call("GET", "/oauth/quickbooks/start?configId=cfg-x")
    assert status == 400
    status, _ = await api.call("GET", "/oauth/xero/start?configId=cfg-x", as_="read")
    assert status == 403
    joined = "\n".join(api.responses)
    for secret in (STRIPE_ACCESS, XERO_ACCESS, XERO_REFRESH, PLATFORM_KEY, XERO_SECRET):
        assert secret not in joined
