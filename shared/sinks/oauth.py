"""The provider-specific half of the control plane's OAuth connect flow.

A destination that can be connected by OAuth registers an `OAuthFlow` (on its
`OAuthProvider` in shared/sinks/registry.py): how to build its authorize URL and how to
turn an authorization code into a Credential. The control plane (services/control/oauth.py)
keeps the generic half (the durable single-use state, the browser binding, storing and
attaching the credential) and names no provider.

A flow reads the control-plane settings it needs by name (`BILLSYNC_CONTROL_<NAME>`
environment variables, fields of services.control.settings.ControlSettings), and reports
failures as `OAuthError`: the request's fault (400) or the provider's (502). Token
responses are secrets: never logged, never put in an error message."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

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


class OAuthFlow(ABC):
    """One provider's authorization-code flow, for the destination `family`."""

    family: str
    title: str  # in messages: "Stripe Connect"
    settings_hint: str  # the settings that enable it, for "not configured" messages

    @abstractmethod
    def configured(self, settings: Any) -> bool:
        """Whether the server holds what the flow needs (client id, secret)."""

    @abstractmethod
    def authorize_endpoint(self, settings: Any) -> str:
        """The provider's authorize page (its origin is allowed in the console's CSP)."""

    @abstractmethod
    def authorize_params(self, settings: Any, redirect_uri: str, state: str) -> dict[str, str]:
        """The authorize URL's query, `state` included."""

    @abstractmethod
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
        """The authorization code -> the credential to store for `config_id`."""

    def authorize_url(self, settings: Any, redirect_uri: str, state: str) -> str:
        """The provider's authorize URL carrying `state` (refused when not configured)."""
        if not self.configured(settings):
            raise OAuthError(
                f"{self.title} OAuth is not configured on this server "
                f"(set BILLSYNC_CONTROL_{self.settings_hint})"
            )
        params = self.authorize_params(settings, redirect_uri, state)
        return f"{self.authorize_endpoint(settings)}?{urlencode(params)}"

    def authorize_origin(self, settings: Any) -> str:
        parts = urlsplit(self.authorize_endpoint(settings))
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
