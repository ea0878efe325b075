"""Credentials through the control plane: every type, public views only, rotation,
encryption at rest on the credentials topic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from shared.credentials import (
    CredentialCipher,
    SalesforceCredential,
    StoredCredential,
    StripeCredential,
)
from shared.credentials.store import unseal
from shared.settings import Settings
from tests.support.control import Api, api_for
from tests.support.kafka import read_topic

pytestmark = pytest.mark.kafka

SECRETS = {
    "stripe": "sk_live_credtest_0123456789",
    "rk": "rk_test_credtest_restricted",
    "whsec": "whsec_credtest_abcdef",
    "paddle": "pdl_live_apikey_credtest_9876",
    "sf_key": "-----BEGIN PRIVATE KEY-----credtest-----END PRIVATE KEY-----",
    "sf_secret": "sf-client-secret-credtest",
    "sf_refresh": "sf-refresh-credtest",
    "xero_secret": "xero-client-secret-credtest",
    "xero_access": "xero-access-credtest",
    "xero_refresh": "xero-refresh-credtest",
    "rotated": "sk_live_rotated_credtest_42",
}

BODIES = [
    {
        "type": "STRIPE",
        "id": "c-stripe",
        "name": "Stripe live",
        "apiKey": SECRETS["stripe"],
        "connectedAccountId": "acct_123ABC",
        "webhookSecret": SECRETS["whsec"],
    },
    {"type": "STRIPE", "id": "c-stripe-rk", "apiKey": SECRETS["rk"]},
    {"type": "PADDLE", "id": "c-paddle", "apiKey": SECRETS["paddle"]},
    {
        "type": "SALESFORCE",
        "id": "c-sf-jwt",
        "grantType": "JWT_BEARER",
        "clientId": "sf-consumer-key",
        "username": "integration@example.com",
        "loginUrl": "https://test.salesforce.com",
        "privateKey": SECRETS["sf_key"],
    },
    {
        "type": "SALESFORCE",
        "id": "c-sf-cc",
        "grantType": "CLIENT_CREDENTIALS",
        "clientId": "sf-cc",
        "clientSecret": SECRETS["sf_secret"],
    },
    {
        "type": "SALESFORCE",
        "id": "c-sf-rt",
        "grantType": "REFRESH_TOKEN",
        "clientId": "sf-rt",
        "clientSecret": SECRETS["sf_secret"],
        "refreshToken": SECRETS["sf_refresh"],
    },
    {
        "type": "XERO",
        "id": "c-xero",
        "clientId": "xero-app",
        "tenantId": "tenant-1",
        "clientSecret": SECRETS["xero_secret"],
        "accessToken": SECRETS["xero_access"],
        "refreshToken": SECRETS["xero_refresh"],
        "accessTokenExpiresAt": "2026-01-01T00:00:00Z",
    },
]


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with api_for(settings) as client:  # credentials never touch the database
        yield client


def _no_secret(text: str) -> None:
    for value in SECRETS.values():
        assert value not in text


async def test_every_type_public_views_and_encryption_at_rest(api: Api, settings: Settings) -> None:
    for body in BODIES:
        status, view = await api.call("POST", "/integrationcredentials", json=body)
        assert status == 201, view
        assert view["id"] == body["id"] and view["version"] == 1
    status, view = await api.call("GET", "/integrationcredentials/c-stripe", as_="read")
    assert status == 200
    assert view["connectedAccountId"] == "acct_123ABC"
    assert view["secretsSet"] == ["apiKey", "webhookSecret"]
    assert "apiKey" not in view and "webhookSecret" not in view
    status, view = await api.call("GET", "/integrationcredentials/c-xero")
    assert view["tenantId"] == "tenant-1" and view["clientId"] == "xero-app"
    assert view["secretsSet"] == ["accessToken", "clientSecret", "refreshToken"]
    status, view = await api.call("GET", "/integrationcredentials/c-sf-jwt")
    assert view["grantType"] == "JWT_BEARER" and view["loginUrl"] == "https://test.salesforce.com"

    status, page = await api.call("GET", "/integrationcredentials?type=SALESFORCE&pageSize=2")
    assert [c["id"] for c in page["data"]] == ["c-sf-cc", "c-sf-jwt"] and page["nextToken"]
    status, page = await api.call(
        "GET", f"/integrationcredentials?type=SALESFORCE&pageSize=2&nextToken={page['nextToken']}"
    )
    assert [c["id"] for c in page["data"]] == ["c-sf-rt"] and page["nextToken"] is None
    _no_secret("\n".join(api.responses))

    # On the topic: ciphertext only, and it decrypts with the shared key.
    records = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.name("credentials")
    )
    _no_secret("\n".join((r.value or b"").decode() for r in records))
    cipher = CredentialCipher(api.handle.credentials_key)
    stored = {s.id: s for s in (StoredCredential.model_validate_json(r.value) for r in records)}
    stripe = unseal(stored["c-stripe"], cipher)
    assert isinstance(stripe, StripeCredential)
    assert stripe.api_key.get_secret_value() == SECRETS["stripe"]
    salesforce = unseal(stored["c-sf-jwt"], cipher)
    assert isinstance(salesforce, SalesforceCredential) and salesforce.private_key is not None


async def test_rotate_keeps_omitted_secrets_and_refuses_bad_input(
    api: Api, settings: Settings
) -> None:
    await api.call("POST", "/integrationcredentials", json=BODIES[0])
    status, view = await api.call(
        "PUT", "/integrationcredentials/c-stripe", json={"apiKey": SECRETS["rotated"]}
    )
    assert status == 200 and view["version"] == 2
    assert view["secretsSet"] == ["apiKey", "webhookSecret"]
    status, view = await api.call(
        "PUT", "/integrationcredentials/c-stripe", json={"webhookSecret": None, "version": 2}
    )
    assert status == 200 and view["version"] == 3 and view["secretsSet"] == ["apiKey"]
    status, body = await api.call(
        "PUT", "/integrationcredentials/c-stripe", json={"apiKey": "x", "version": 1}
    )
    assert status == 409
    status, body = await api.call(
        "PUT", "/integrationcredentials/c-stripe", json={"type": "PADDLE", "apiKey": "x"}
    )
    assert status == 400 and body["error"]["details"][0]["field"] == "type"

    records = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.name("credentials")
    )
    latest = StoredCredential.model_validate_json(records[-1].value)
    rotated = unseal(latest, CredentialCipher(SecretStr(api.handle.credentials_key)))
    assert isinstance(rotated, StripeCredential)
    assert rotated.api_key.get_secret_value() == SECRETS["rotated"]
    assert rotated.webhook_secret is None and rotated.connected_account_id == "acct_123ABC"

    refusals = [
        {"type": "STRIPE", "id": "bad-1"},  # no apiKey
        {"type": "STRIPE", "apiKey": SECRETS["stripe"], "connectedAccountId": "nope"},
        {"type": "SALESFORCE", "clientId": "x", "grantType": "PASSWORD"},
        {"type": "QUICKBOOKS", "apiKey": "x"},
        {"type": "PADDLE", "apiKey": SECRETS["paddle"], "apiKye": "typo"},
    ]
    for body in refusals:
        status, error = await api.call("POST", "/integrationcredentials", json=body)
        assert status == 400, body
        assert error["error"]["details"], body
    status, _dup = await api.call("POST", "/integrationcredentials", json=BODIES[0])
    assert status == 409
    status, gen = await api.call(
        "POST", "/integrationcredentials", json={"type": "PADDLE", "apiKey": SECRETS["paddle"]}
    )
    assert status == 201 and gen["id"].startswith("cred_")
    status, _ = await api.call("DELETE", f"/integrationcredentials/{gen['id']}")
    assert status == 200
    status, _ = await api.call("GET", f"/integrationcredentials/{gen['id']}")
    assert status == 404
    _no_secret("\n".join(api.responses))
