"""Stripe Connect's OAuth flow (standard accounts): the provider half of the control
plane's connect flow (shared/sinks/oauth.py). Settings, read from the control plane's
(`BILLSYNC_CONTROL_STRIPE_CONNECT_*`): the platform's client id and secret key, the
authorize and token URLs."""

from __future__ import annotations

from typing import Any

import aiohttp

from shared.contracts import Destination
from shared.credentials import Credential, StripeCredential
from shared.sinks.oauth import OAuthError, OAuthFlow, post_token


class StripeConnectFlow(OAuthFlow):
    family = "stripe"
    title = "Stripe Connect"
    settings_hint = "STRIPE_CONNECT_CLIENT_ID/_SECRET_KEY"

    def configured(self, settings: Any) -> bool:
        return bool(settings.stripe_connect_client_id and settings.stripe_connect_secret_key)

    def authorize_endpoint(self, settings: Any) -> str:
        return str(settings.stripe_connect_authorize_url)

    def authorize_params(self, settings: Any, redirect_uri: str, state: str) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": settings.stripe_connect_client_id,
            "scope": "read_write",
            "redirect_uri": redirect_uri,
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
        secret = settings.stripe_connect_secret_key
        assert secret is not None
        token = await post_token(
            session,
            settings.stripe_connect_token_url,
            {"grant_type": "authorization_code", "code": code},
            aiohttp.BasicAuth(secret.get_secret_value(), ""),
            "stripe",
        )
        live = bool(token.get("livemode"))
        if live != (destination is Destination.STRIPE):
            raise OAuthError(
                f"Stripe connected a {'live' if live else 'test'} mode account but the "
                f"configuration is {destination.value}: connect in the matching mode"
            )
        account = token.get("stripe_user_id")
        return StripeCredential(
            id=f"oauth-stripe-{config_id}",
            name=f"Stripe Connect ({config_id})",
            api_key=token["access_token"],
            connected_account_id=account if isinstance(account, str) else None,
        )
