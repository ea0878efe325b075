"""Connecting Xero by OAuth 2.0 from the control plane against the local Xero (consent,
code exchange, tenant from GET /connections), then the sink delivering with the stored
credential and refreshing its rotating token through the control plane."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from pydantic import SecretStr

from fakes.xero import FakeXero
from services.xero_sink.destination import XeroDestination
from services.xero_sink.oauth import XeroOAuthSettings
from shared.contracts import RunStatus, parse_config
from shared.credentials import CredentialCipher, XeroCredential
from shared.settings import Settings
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.limits import QuotaLimiter
from shared.sinks.standard_tests import generated_envelope
from shared.sinks.token_refresh import (
    AuthlibExchange,
    ControlPlaneCredentials,
    ControlPlaneLink,
    TokenRefresher,
    TokenSet,
)
from tests.support.builders import account, bill, line
from tests.support.control import Api, api_for

pytestmark = pytest.mark.kafka
CLIENT, SECRET = "xero-app", "xero-app-secret"
TENANT = "cccccccc-0000-4000-8000-00000000000c"


@pytest.fixture
async def fake() -> AsyncIterator[FakeXero]:
    fake = FakeXero(clients={CLIENT: SECRET})
    fake.add_organisation("Demo Company (Local)", TENANT)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def api(settings: Settings, fake: FakeXero) -> AsyncIterator[Api]:
    xero = XeroOAuthSettings(
        client_id=CLIENT,
        client_secret=SecretStr(SECRET),
        authorize_url=f"{fake.url}/identity/connect/authorize",
        token_url=f"{fake.url}/connect/token",
        connections_url=f"{fake.url}/connections",
    )
    async with api_for(settings, oauth={"xero": xero}) as client:
        yield client


async def test_connect_by_oauth_then_deliver_and_refresh(
    api: Api, fake: FakeXero, settings: Settings
) -> None:
    status, _ = await api.call(
        "POST", "/integrationconfigs", json={"id": "cfg-x", "destination": "XERO"}
    )
    assert status in (200, 201)
    status, body = await api.call("GET", "/oauth/xero/start?configId=cfg-x")
    assert status == 200, body
    callback = body["authorizeUrl"]
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1, as a browser keeps them
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:  # to Xero, consents
        for _ in range(3):  # the control plane's begin link, then Xero's consent page
            async with browser.get(callback, allow_redirects=False) as hop:
                assert hop.status == 302, await hop.text()
                callback = hop.headers["Location"]
            if callback.startswith(body["redirectUri"]):
                break
        assert callback.startswith(body["redirectUri"])
        async with browser.get(callback) as done:  # back in the same browser
            assert done.status == 200, await done.text()
    assert fake.stats["token_grants"]["authorization_code"] == 1
    status, cred = await api.call("GET", "/integrationcredentials/oauth-xero-cfg-x")
    assert cred["tenantId"] == TENANT  # chosen from GET /connections

    source = ControlPlaneCredentials(
        settings.topics.name("credentials"),
        settings.kafka_bootstrap_servers,
        CredentialCipher(SecretStr(api.handle.credentials_key)),
        ControlPlaneLink(
            control_url=api.handle.base_url, control_token=SecretStr(api.handle.admin_token)
        ),
    )
    stored = await source.latest("oauth-xero-cfg-x")
    assert isinstance(stored, XeroCredential) and stored.refresh_token is not None
    # The stored access token expires (as after 30 minutes): the sink must refresh, rotate
    # and save before using the new one.
    assert stored.access_token is not None
    await source.save(
        stored,
        TokenSet(
            stored.access_token.get_secret_value(),
            stored.refresh_token.get_secret_value(),
            datetime(2020, 1, 1, tzinfo=UTC),
        ),
    )
    expired = await source.latest("oauth-xero-cfg-x")
    assert isinstance(expired, XeroCredential)
    refresher = TokenRefresher(source, AuthlibExchange(f"{fake.url}/connect/token"))
    destination = XeroDestination(
        fake.url, token_url=f"{fake.url}/connect/token", refresher=refresher
    )
    config = parse_config(
        {"id": "cfg-x", "destination": "XERO", "integrationCredentialsId": "oauth-xero-cfg-x"}
    )
    b = bill(
        "bill-oauth",
        lines=[line("li-1", "USAGE", "42.00")],
        embed=account("acc-1"),
        bill_date=dt.date(2026, 11, 1),
    )
    envelope = generated_envelope(config, b, account("acc-1"))
    client = destination.make_client(config.destination, expired)
    calls = ProviderCalls("xero", QuotaLimiter(destination.limits), destination.classify)
    try:
        (outcome,) = await destination.deliver_batch(
            [DeliveryRequest(envelope, config, "acc-1", None, False, 1, "run-1")], client, calls
        )
    finally:
        await client.close()
    assert isinstance(outcome, DeliveryResult) and outcome.status is RunStatus.COMPLETE
    assert [d["InvoiceNumber"] for d in fake.documents(TENANT)] == ["bill-oauth"]
    assert fake.stats["token_grants"]["refresh_token"] == 1
    saved = await source.latest("oauth-xero-cfg-x")
    assert isinstance(saved, XeroCredential) and saved.refresh_token is not None
    assert saved.refresh_token.get_secret_value() != stored.refresh_token.get_secret_value()
    assert saved.version == expired.version + 1  # saved through the control plane first
