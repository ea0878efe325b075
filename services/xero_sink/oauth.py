"""Xero's OAuth 2 code flow: the provider half of the control plane's connect flow
(shared/sinks/oauth.py). After the exchange, `GET /connections` names the organisation the
user connected (the first ORGANISATION tenant). Its own settings (`XeroOAuthSettings`,
`BILLSYNC_CONTROL_XERO_*`): client id and secret, authorize, token and connections URLs,
scopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from shared.contracts import Destination
from shared.credentials import Credential, XeroCredential
from shared.sinks.oauth import OAuthClientSettings, OAuthError, OAuthFlow, post_token

AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
TOKEN_URL = "https://identity.xero.com/connect/token"
SCOPES = (
    "openid profile email accounting.transactions accounting.contacts "
    "accounting.settings offline_access"
)


class XeroOAuthSettings(OAuthClientSettings):
    model_config = SettingsConfigDict(env_prefix="BILLSYNC_CONTROL_XERO_", extra="ignore")

    client_secret: SecretStr | None = None
    authorize_url: str = AUTHORIZE_URL
    token_url: str = TOKEN_URL
    connections_url: str = "https://api.xero.com/connections"
    scopes: str = SCOPES


class XeroFlow(OAuthFlow[XeroOAuthSettings]):
    family = "xero"
    title = "Xero"
    settings_type = XeroOAuthSettings
    settings_hint = "BILLSYNC_CONTROL_XERO_CLIENT_ID and _CLIENT_SECRET"

    def secret(self, settings: XeroOAuthSettings) -> SecretStr | None:
        return settings.client_secret

    def scope(self, settings: XeroOAuthSettings) -> str:
        return settings.scopes

    async def exchange(
        self,
        session: aiohttp.ClientSession,
        settings: XeroOAuthSettings,
        *,
        config_id: str,
        code: str,
        redirect_uri: str,
        destination: Destination,
    ) -> Credential:
        client_id, client_secret = self.client(settings)
        token = await post_token(
            session,
            settings.token_url,
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            aiohttp.BasicAuth(client_id, client_secret.get_secret_value()),
            "xero",
        )
        tenant_id, tenant_name = await _tenant(
            session, settings.connections_url, token["access_token"]
        )
        expires = datetime.now(UTC) + timedelta(seconds=int(token.get("expires_in", 1800)))
        return XeroCredential(
            id=f"oauth-xero-{config_id}",
            name=f"Xero {tenant_name} ({config_id})",
            client_id=client_id,
            client_secret=client_secret,
            tenant_id=tenant_id,
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            access_token_expires_at=expires,
        )


async def _tenant(session: aiohttp.ClientSession, url: str, access_token: str) -> tuple[str, str]:
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    try:
        async with session.get(url, headers=headers) as resp:
            body = await resp.json(content_type=None)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, ValueError):
        raise OAuthError(
            "could not list the Xero organisations connected", provider_side=True
        ) from None
    tenants = [t for t in body if isinstance(t, dict)] if isinstance(body, list) else []
    orgs = [t for t in tenants if t.get("tenantType", "ORGANISATION") == "ORGANISATION"]
    if status >= 400 or not orgs:
        raise OAuthError(
            "Xero connected no organisation; connect one and retry", provider_side=True
        )
    return str(orgs[0]["tenantId"]), str(orgs[0].get("tenantName", ""))
