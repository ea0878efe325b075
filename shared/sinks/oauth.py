"""The provider-specific half of the control plane's OAuth connect flow.

A destination that can be connected by OAuth registers an `OAuthFlow` (on its
`OAuthProvider` in shared/sinks/registry.py): its settings class, and how to turn an
authorization code into a Credential. The control plane (services/control/oauth.py)
keeps the generic half (the durable single-use state, the browser binding, storing and
attaching the credential) and names no provider.

A flow owns its settings: a subclass of `OAuthClientSettings` in the destination's own
package, read from the environment under the flow's own prefix (Stripe Connect's
`BILLSYNC_CONTROL_STRIPE_CONNECT_*`, Xero's `BILLSYNC_CONTROL_XERO_*`). The control plane
builds one per registered flow and hands it to the flow; a new destination adds no field to
the control plane's settings. The authorize request is the standard one (RFC 6749 4.1.1),
built here. Failures are `OAuthError`: the request's fault (400) or the provider's (502).
Token responses are secrets: never logged, never put in an error message."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode, urlsplit

import aiohttp
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts import Destination
from shared.credentials import Credential
from shared.logging import get_logger

log = get_logger(__name__)
ERROR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class OAuthError(Exception):
    """A connect step failed; `provider_side`: the provider refused or was unreachable
    (502), otherwise the request or the server's setup is at fault (400)."""

    def __init__(self, message: str, *, provider_side: bool = False) -> None:
        super().__init__(message)
        self.provider_side = provider_side


class OAuthClientSettings(BaseSettings):
    """What every authorization-code flow reads. A flow's subclass sets its environment
    prefix (`model_config`), the provider's endpoints as defaults, its secret and any
    field of its own (Xero's connections URL)."""

    model_config = SettingsConfigDict(extra="ignore")

    client_id: str | None = None
    authorize_url: str
    token_url: str


SettingsT = TypeVar("SettingsT", bound=OAuthClientSettings)


class OAuthFlow(ABC, Generic[SettingsT]):
    """One provider's authorization-code flow, for the destination `family`."""

    family: str
    title: str  # in messages: "Stripe Connect"
    settings_type: type[SettingsT]  # built by the control plane from the environment
    settings_hint: str  # the variables that enable it, for "not configured" messages

    @abstractmethod
    def secret(self, settings: SettingsT) -> SecretStr | None:
        """The client secret the code exchange authenticates with."""

    @abstractmethod
    def scope(self, settings: SettingsT) -> str:
        """The scopes the authorize URL asks for."""

    @abstractmethod
    async def exchange(
        self,
        session: aiohttp.ClientSession,
        settings: SettingsT,
        *,
        config_id: str,
        code: str,
        redirect_uri: str,
        destination: Destination,
    ) -> Credential:
        """The authorization code -> the credential to store for `config_id`."""

    def client(self, settings: SettingsT) -> tuple[str, SecretStr]:
        """The client id and secret (refused when the server does not hold both)."""
        secret = self.secret(settings)
        if not settings.client_id or secret is None or not secret.get_secret_value():
            raise OAuthError(
                f"{self.title} OAuth is not configured on this server (set {self.settings_hint})"
            )
        return settings.client_id, secret

    def configured(self, settings: SettingsT) -> bool:
        """Whether the server holds what the flow needs (client id, secret)."""
        try:
            self.client(settings)
        except OAuthError:
            return False
        return True

    def authorize_url(self, settings: SettingsT, redirect_uri: str, state: str) -> str:
        """The provider's authorize URL carrying `state` (refused when not configured)."""
        client_id, _ = self.client(settings)
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": self.scope(settings),
            "state": state,
        }
        return f"{settings.authorize_url}?{urlencode(params)}"

    def authorize_origin(self, settings: SettingsT) -> str:
        """The authorize page's origin (allowed in the console's CSP)."""
        parts = urlsplit(settings.authorize_url)
        return f"{parts.scheme}://{parts.netloc}"


async def post_token(
    session: aiohttp.ClientSession,
    url: str,
    form: dict[str, str],
    auth: aiohttp.BasicAuth,
    provider: str,
) -> dict[str, Any]:
    """POST to a token endpoint; the token response, or OAuthError (the provider's error
    code only, when it is a plain code: never the body)."""
    try:
        async with session.post(url, data=form, auth=auth) as resp:
            body = await resp.json(content_type=None)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("oauth_exchange_unreachable", provider=provider, error=type(exc).__name__)
        raise OAuthError(
            f"could not reach the {provider} token endpoint", provider_side=True
        ) from None
    if status >= 400 or not isinstance(body, dict) or "access_token" not in body:
        code = body.get("error") if isinstance(body, dict) else None
        code = code if isinstance(code, str) and ERROR_CODE.match(code) else "unknown"
        log.warning("oauth_exchange_refused", provider=provider, status=status, error=code)
        raise OAuthError(f"{provider} refused the authorization code ({code})", provider_side=True)
    return body
