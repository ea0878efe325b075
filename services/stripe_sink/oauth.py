"""Stripe Connect's OAuth flow (standard accounts): the provider half of the control
plane's connect flow (shared/sinks/oauth.py), with its own settings
(`StripeConnectSettings`, `BILLSYNC_CONTROL_STRIPE_CONNECT_*`): the platform's client id
and secret key, the authorize and token URLs."""

from __future__ import annotations

import aiohttp
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from shared.contracts import Destination
from shared.credentials import Credential, StripeCredential
from shared.sinks.oauth import OAuthClientSettings, OAuthError, OAuthFlow, post_token

AUTHORIZE_URL = "https://connect.stripe.com/oauth/authorize"
TOKEN_URL = "https://connect.stripe.com/oauth/token"
SCOPE = "read_write"


class StripeConnectSettings(OAuthClientSettings):
    model_config = SettingsConfigDict(env_prefix="BILLSYNC_CONTROL_STRIPE_CONNECT_", extra="ignore")

    secret_key: SecretStr | None = None  # the platform's key: the exchange authenticates with it
    authorize_url: str = AUTHORIZE_URL
    token_url: str = TOKEN_URL


class StripeConnectFlow(OAuthFlow[StripeConnectSettings]):
    family = "stripe"
    title = "Stripe Connect"
    settings_type = StripeConnectSettings
    settings_hint = "BILLSYNC_CONTROL_STRIPE_CONNECT_CLIENT_ID and _SECRET_KEY"

    def secret(self, settings: StripeConnectSettings) -> SecretStr | None:
        return settings.secret_key

    def scope(self, settings: StripeConnectSettings) -> str:
        return SCOPE

    async def exchange(
        self,
        session: aiohttp.ClientSession,
        settings: StripeConnectSettings,
        *,
        config_id: str,
        code: str,
        redirect_uri: str,
        destination: Destination,
    ) -> Credential:
        _, secret = self.client(settings)
        token = await post_token(
            session,
            settings.token_url,
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
