"""OAuth authorization-code flows (Stripe Connect, Xero) against a local fake provider."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest
from pydantic import SecretStr

from services.control.oauth_state import SESSION_COOKIE
from services.stripe_sink.oauth import StripeConnectSettings
from services.xero_sink.oauth import XeroOAuthSettings
from shared.credentials import CredentialCipher, StoredCredential, StripeCredential, XeroCredential
from shared.credentials.store import unseal
from shared.settings import Settings
from shared.sinks.oauth import OAuthClientSettings
from tests.support.control import (
    STRIPE_ACCESS,
    XERO_ACCESS,
    XERO_REFRESH,
    Api,
    FakeProvider,
    api_for,
    fake_oauth_provider,
    running_control_plane,
)
from tests.support.kafka import read_topic

pytestmark = pytest.mark.kafka
PLATFORM_KEY = "sk_test_platform_key_for_exchange"
XERO_SECRET = "xero-app-client-secret-value"


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    async with fake_oauth_provider() as fake:
        yield fake


def oauth_settings(provider: FakeProvider) -> dict[str, OAuthClientSettings]:
    return {
        "stripe": StripeConnectSettings(
            client_id="ca_test_client",
            secret_key=SecretStr(PLATFORM_KEY),
            authorize_url="https://connect.example/authorize",
            token_url=f"{provider.base_url}/stripe/token",
        ),
        "xero": XeroOAuthSettings(
            client_id="xero-app",
            client_secret=SecretStr(XERO_SECRET),
            authorize_url="https://login.example/authorize",
            token_url=f"{provider.base_url}/xero/token",
            connections_url=f"{provider.base_url}/xero/connections",
        ),
    }


@pytest.fixture
async def api(settings: Settings, provider: FakeProvider) -> AsyncIterator[Api]:
    async with api_for(settings, oauth=oauth_settings(provider)) as client:
        yield client


@dataclass
class Flow:
    """One started flow as the user's browser sees it after opening the begin link."""

    params: dict[str, list[str]]  # the provider's authorize URL query
    cookie: str

    @property
    def state(self) -> str:
        return self.params["state"][0]


async def _start(api: Api, provider: str, config_id: str) -> Flow:
    status, body = await api.call("GET", f"/oauth/{provider}/start?configId={config_id}")
    assert status == 200, body
    assert body["redirectUri"] == f"{api.handle.base_url}/oauth/{provider}/callback"
    assert body["authorizeUrl"].startswith(f"{api.handle.base_url}/oauth/{provider}/begin?")
    async with api.session.get(body["authorizeUrl"], allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        cookie = resp.cookies[SESSION_COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Lax"
        return Flow(parse_qs(urlparse(resp.headers["Location"]).query), cookie.value)


async def _callback(api: Api, provider: str, query: str, cookie: str | None) -> tuple[int, Any]:
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {}
    return await api.call("GET", f"/oauth/{provider}/callback?{query}", as_=None, headers=headers)


async def test_stripe_connect_flow(api: Api, provider: FakeProvider, settings: Settings) -> None:
    await api.call(
        "POST", "/integrationconfigs", json={"id": "cfg-s", "destination": "STRIPE_TEST"}
    )
    flow = await _start(api, "stripe", "cfg-s")
    params, state = flow.params, flow.state
    assert params["client_id"] == ["ca_test_client"] and params["scope"] == ["read_write"]
    assert params["response_type"] == ["code"]

    # The callback is open (the browser has no token); the state and cookie authorise it.
    status, done = await _callback(api, "stripe", f"code=good-code&state={state}", flow.cookie)
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
    status, body = await _callback(api, "stripe", f"code=good-code&state={state}", flow.cookie)
    assert status == 400 and "already completed" in body["error"]["message"]
    status, body = await _callback(api, "xero", f"code=c&state={state}", flow.cookie)
    assert status == 400 and "issued for stripe" in body["error"]["message"]
    forged = state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB")
    status, _ = await _callback(api, "stripe", f"code=c&state={forged}", flow.cookie)
    assert status == 400

    # The provider refuses the code: 502 with its error code, never the code itself.
    flow = await _start(api, "stripe", "cfg-s")
    status, body = await _callback(
        api, "stripe", f"code=stolen-code&state={flow.state}", flow.cookie
    )
    assert status == 502 and body["error"]["code"] == "provider_error"
    assert "invalid_grant" in body["error"]["message"] and "stolen" not in body["error"]["message"]
    status, body = await api.call("GET", "/oauth/stripe/callback?error=access_denied", as_=None)
    assert status == 400 and "access_denied" in body["error"]["message"]

    # Live-mode account for a test-mode configuration: refused.
    provider.livemode = True
    flow = await _start(api, "stripe", "cfg-s")
    status, body = await _callback(api, "stripe", f"code=good-code&state={flow.state}", flow.cookie)
    assert status == 400 and "live mode" in body["error"]["message"]


async def test_xero_flow_and_refusals(api: Api, provider: FakeProvider, settings: Settings) -> None:
    await api.call("POST", "/integrationconfigs", json={"id": "cfg-x", "destination": "XERO"})
    await api.call("POST", "/integrationconfigs", json={"id": "cfg-p", "destination": "PADDLE"})
    flow = await _start(api, "xero", "cfg-x")
    assert "offline_access" in flow.params["scope"][0]
    status, done = await _callback(api, "xero", f"code=xero-code&state={flow.state}", flow.cookie)
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
    flow = await _start(api, "xero", "cfg-x")
    await _callback(api, "xero", f"code=again&state={flow.state}", flow.cookie)
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


async def test_a_state_is_bound_to_one_browser_and_survives_nothing(
    settings: Settings, provider: FakeProvider, tmp_path: Path
) -> None:
    """Single use across a restart (durable), only from the browser that opened begin, and
    a failed exchange does not burn the attempt."""
    oauth = oauth_settings(provider)
    control = {"oauth_state_secret": "a-fixed-secret-so-old-states-still-verify"}
    database = f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"
    async with (
        running_control_plane(settings, database, oauth, **control) as handle,
        aiohttp.ClientSession() as session,
    ):
        api = Api(handle, session)
        await api.call(
            "POST", "/integrationconfigs", json={"id": "cfg-r", "destination": "STRIPE_TEST"}
        )
        flow = await _start(api, "stripe", "cfg-r")
        good = f"code=good-code&state={flow.state}"
        # Another browser (no cookie, or someone else's) cannot complete it.
        for cookie in (None, "someone-elses-session"):
            status, body = await _callback(api, "stripe", good, cookie)
            assert status == 400 and "another browser" in body["error"]["message"]
        # The begin link binds once: a second opener is refused.
        status, start = await api.call("GET", "/oauth/stripe/start?configId=cfg-r")
        async with session.get(start["authorizeUrl"], allow_redirects=False) as resp:
            assert resp.status == 302
        async with session.get(start["authorizeUrl"], allow_redirects=False) as resp:
            assert (
                resp.status == 400 and "already opened" in (await resp.json())["error"]["message"]
            )
        # The exchange fails (provider refuses): the same attempt can still complete.
        status, _ = await _callback(api, "stripe", f"code=bad&state={flow.state}", flow.cookie)
        assert status == 502
        status, done = await _callback(api, "stripe", good, flow.cookie)
        assert status == 200 and done["status"] == "CONNECTED"
        exchanges = len(provider.exchanges)

    async with (
        running_control_plane(settings, database, oauth, **control) as handle,
        aiohttp.ClientSession() as session,
    ):
        api = Api(handle, session)
        # A replay after the restart, with another code: refused before any exchange.
        status, body = await _callback(
            api, "stripe", f"code=other-code&state={flow.state}", flow.cookie
        )
        assert status == 400 and "already completed" in body["error"]["message"]
        assert len(provider.exchanges) == exchanges
