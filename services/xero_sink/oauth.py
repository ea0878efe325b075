"""Xero's OAuth 2 code flow: the provider half of the control plane's connect flow
(shared/sinks/oauth.py). After the exchange, `GET /connections` names the organisation the
user connected (the first ORGANISATION tenant). Settings, read from the control plane's
(`BILLSYNC_CONTROL_XERO_*`): client id and secret, authorize, token and connections URLs,
scopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from shared.contracts import Destination
from shared.credentials import Credential, XeroCredential
from shared.sinks.oauth import OAuthError, OAuthFlow, post_token


class XeroFlow(OAuthFlow):
    family = "xero"
    title = "Xero"
    settings_hint = "XERO_CLIENT_ID/_CLIENT_SECRET"

    def configured(self, settings: Any) -> bool:
        return bool(settings.xero_client_id and settings.xero_client_secret)

    def authorize_endpoint(self, settings: Any) -> str:
        return str(settings.xero_authorize_url)

    def authorize_params(self, settings: Any, redirect_uri: str, state: str) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": settings.xero_client_id,
            "redirect_uri": redirect_uri,
            "scope": settings.xero_scopes,
            "state": state,
        }

    async def exchange(
        self,
        session: aiohttp.ClientSession,
        settings: Any,
        *,
        config_id: str,
        code: str,
        redirect_uri: str,
        destination: Destination,
    ) -> Credential:
        client_id, client_secret = settings.xero_client_id, settings.xero_client_secret
        assert client_id is not None and client_secret is not None
        token = await post_token(
            session,
            settings.xero_token_url,
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            aiohttp.BasicAuth(client_id, client_secret.get_secret_value()),
            "xero",
        )
        tenant_id, tenant_name = await _tenant(
            session, settings.xero_connections_url, token["access_token"]
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
