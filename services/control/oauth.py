"""OAuth authorization-code flows that connect a configuration: Stripe Connect and Xero.

`start` (an admin) records a signed state naming the configuration and returns the URL the
user's browser opens: our own `begin`, which binds the state to that browser (a cookie)
and redirects to the provider. The provider sends the browser to `callback`, which claims
the state (once, durably: see oauth_state.py), exchanges the code at the provider's token
URL, stores the tokens as an encrypted credential and attaches it. A failed exchange
releases the state. Token responses are secrets: they are never logged or returned."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from services.control import connections
from services.control.configs_api import attach
from services.control.context import CTX, ControlContext
from services.control.errors import ApiError, provider_error, validation_error
from services.control.oauth_state import (
    SESSION_COOKIE,
    State,
    StateError,
    StateLedger,
    StateSigner,
)
from services.control.settings import ControlSettings
from shared.contracts import Destination
from shared.credentials import Credential, StripeCredential, XeroCredential
from shared.logging import get_logger

log = get_logger(__name__)
PROVIDERS = {"stripe": "stripe", "xero": "xero"}  # provider -> destination family
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class OAuthService:
    def __init__(self, control: ControlSettings, engine: AsyncEngine) -> None:
        self.control = control
        secret = control.oauth_state_secret
        raw = secret.get_secret_value().encode() if secret else os.urandom(32)
        self.states = StateSigner(raw, control.oauth_state_ttl_seconds)
        self.ledger = StateLedger(engine)
        self.base_url = control.base_url()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    def redirect_uri(self, provider: str) -> str:
        return f"{self.base_url}/oauth/{provider}/callback"

    def begin_url(self, provider: str, state: str) -> str:
        return f"{self.base_url}/oauth/{provider}/begin?{urlencode({'state': state})}"

    def authorize_url(self, provider: str, state: str) -> str:
        """The provider's authorize URL carrying `state` (refused when not configured)."""
        c = self.control
        if provider == "stripe":
            if not c.stripe_connect_client_id or not c.stripe_connect_secret_key:
                raise _not_configured("Stripe Connect", "STRIPE_CONNECT_CLIENT_ID/_SECRET_KEY")
            params = {
                "response_type": "code",
                "client_id": c.stripe_connect_client_id,
                "scope": "read_write",
                "redirect_uri": self.redirect_uri(provider),
                "state": state,
            }
            return f"{c.stripe_connect_authorize_url}?{urlencode(params)}"
        if not c.xero_client_id or not c.xero_client_secret:
            raise _not_configured("Xero", "XERO_CLIENT_ID/_CLIENT_SECRET")
        params = {
            "response_type": "code",
            "client_id": c.xero_client_id,
            "redirect_uri": self.redirect_uri(provider),
            "scope": c.xero_scopes,
            "state": state,
        }
        return f"{c.xero_authorize_url}?{urlencode(params)}"

    async def _post_token(
        self, url: str, form: dict[str, str], auth: aiohttp.BasicAuth, provider: str
    ) -> dict[str, Any]:
        assert self._session is not None
        try:
            async with self._session.post(url, data=form, auth=auth) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("oauth_exchange_unreachable", provider=provider, error=type(exc).__name__)
            raise provider_error(f"could not reach the {provider} token endpoint") from None
        if status >= 400 or not isinstance(body, dict) or "access_token" not in body:
            code = body.get("error") if isinstance(body, dict) else None
            code = code if isinstance(code, str) and _ERROR_CODE.match(code) else "unknown"
            log.warning("oauth_exchange_refused", provider=provider, status=status, error=code)
            raise provider_error(f"{provider} refused the authorization code ({code})")
        return body

    async def stripe_credential(
        self, config_id: str, code: str, destination: Destination
    ) -> Credential:
        c = self.control
        assert c.stripe_connect_secret_key is not None
        token = await self._post_token(
            c.stripe_connect_token_url,
            {"grant_type": "authorization_code", "code": code},
            aiohttp.BasicAuth(c.stripe_connect_secret_key.get_secret_value(), ""),
            "stripe",
        )
        live = bool(token.get("livemode"))
        if live != (destination is Destination.STRIPE):
            raise validation_error(
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

    async def xero_credential(self, config_id: str, code: str) -> Credential:
        c = self.control
        assert c.xero_client_id is not None and c.xero_client_secret is not None
        token = await self._post_token(
            c.xero_token_url,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri("xero"),
            },
            aiohttp.BasicAuth(c.xero_client_id, c.xero_client_secret.get_secret_value()),
            "xero",
        )
        tenant_id, tenant_name = await self._xero_tenant(token["access_token"])
        expires = datetime.now(UTC) + timedelta(seconds=int(token.get("expires_in", 1800)))
        return XeroCredential(
            id=f"oauth-xero-{config_id}",
            name=f"Xero {tenant_name} ({config_id})",
            client_id=c.xero_client_id,
            client_secret=c.xero_client_secret,
            tenant_id=tenant_id,
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            access_token_expires_at=expires,
        )

    async def _xero_tenant(self, access_token: str) -> tuple[str, str]:
        assert self._session is not None
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        try:
            async with self._session.get(
                self.control.xero_connections_url, headers=headers
            ) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise provider_error("could not list the Xero organisations connected") from None
        tenants = [t for t in body if isinstance(t, dict)] if isinstance(body, list) else []
        orgs = [t for t in tenants if t.get("tenantType", "ORGANISATION") == "ORGANISATION"]
        if status >= 400 or not orgs:
            raise provider_error("Xero connected no organisation; connect one and retry")
        return str(orgs[0]["tenantId"]), str(orgs[0].get("tenantName", ""))


def _not_configured(name: str, env: str) -> ApiError:
    return validation_error(
        f"{name} OAuth is not configured on this server (set BILLSYNC_CONTROL_{env})"
    )


def _provider(request: web.Request) -> str:
    provider = request.match_info["provider"]
    if provider not in PROVIDERS:
        raise validation_error(
            "provider must be stripe or xero",
            [{"field": "provider", "message": "stripe or xero"}],
        )
    return provider


def _config_for(ctx: ControlContext, provider: str, config_id: str) -> Destination:
    config = ctx.configs.require(config_id)
    if config.destination.family != PROVIDERS[provider]:
        raise validation_error(
            f"configuration {config_id!r} is a {config.destination.value} configuration; "
            f"connect it with its own provider, not {provider}"
        )
    return config.destination


async def issue_begin_link(ctx: ControlContext, provider: str, config_id: str) -> str:
    """A single-use state, recorded durably, as the link the browser must open first."""
    token, state = ctx.oauth.states.issue(provider, config_id)
    ctx.oauth.authorize_url(provider, token)  # refuses now if the provider is not set up
    await ctx.oauth.ledger.record(state)
    return ctx.oauth.begin_url(provider, token)


async def start(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    provider = _provider(request)
    config_id = request.query.get("configId", "")
    if not config_id:
        raise validation_error(
            "configId is required", [{"field": "configId", "message": "required"}]
        )
    _config_for(ctx, provider, config_id)
    return web.json_response(
        {
            "authorizeUrl": await issue_begin_link(ctx, provider, config_id),
            "redirectUri": ctx.oauth.redirect_uri(provider),
            "expiresInSeconds": ctx.oauth.states.ttl,
        }
    )


def _state(request: web.Request, provider: str) -> tuple[str, State]:
    token = request.query.get("state", "")
    if not token:
        raise validation_error("state is required: open the link `start` returned")
    try:
        return token, request.app[CTX].oauth.states.verify(token, provider)
    except StateError as exc:
        raise validation_error(f"invalid OAuth state: {exc}") from None


async def begin(request: web.Request) -> web.StreamResponse:
    """The browser's first step: bind the state to this browser, then go to the provider."""
    ctx = request.app[CTX]
    provider = _provider(request)
    token, state = _state(request, provider)
    try:
        session = await ctx.oauth.ledger.bind(state)
    except StateError as exc:
        raise validation_error(f"invalid OAuth state: {exc}") from None
    response = web.HTTPFound(ctx.oauth.authorize_url(provider, token))
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=ctx.oauth.states.ttl,
        path="/oauth/",
        httponly=True,
        samesite="Lax",  # sent on the provider's top-level redirect back to the callback
        secure=ctx.oauth.base_url.startswith("https://"),
    )
    raise response


async def callback(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    provider = _provider(request)
    q = request.query
    if "error" in q:
        code = q["error"] if _ERROR_CODE.match(q["error"]) else "error"
        raise validation_error(f"{provider} did not authorize the connection ({code})")
    if not q.get("code") or not q.get("state"):
        raise validation_error("code and state are required")
    _, state = _state(request, provider)
    try:
        await ctx.oauth.ledger.claim(state, request.cookies.get(SESSION_COOKIE))
    except StateError as exc:
        raise validation_error(f"invalid OAuth state: {exc}") from None
    try:
        stored = await _connect(ctx, provider, state.config_id, q["code"])
    except Exception:
        # Not the user's fault (or not theirs alone): the same attempt may be completed.
        await ctx.oauth.ledger.release(state)
        raise
    result = {
        "integrationConfigId": state.config_id,
        "integrationCredentialsId": stored,
        "status": "CONNECTED",
    }
    if ctx.control.oauth_success_redirect_url:
        raise web.HTTPFound(f"{ctx.control.oauth_success_redirect_url}?{urlencode(result)}")
    return web.json_response(result)


async def _connect(ctx: ControlContext, provider: str, config_id: str, code: str) -> str:
    destination = _config_for(ctx, provider, config_id)
    if provider == "stripe":
        credential = await ctx.oauth.stripe_credential(config_id, code, destination)
    else:
        credential = await ctx.oauth.xero_credential(config_id, code)
    actor = f"oauth:{provider}"
    stored = await ctx.credentials.upsert(credential, actor)
    await attach(ctx, config_id, stored.id, actor)
    await connections.record_verified(ctx, config_id, stored.id)
    log.info(
        "oauth_connected",
        provider=provider,
        config_id=config_id,
        credential_id=stored.id,
        credential_version=stored.version,
    )
    return stored.id


def routes() -> list[web.RouteDef]:
    return [
        web.get("/oauth/{provider}/start", start),
        web.get("/oauth/{provider}/begin", begin),
        web.get("/oauth/{provider}/callback", callback),
    ]
