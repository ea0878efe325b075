"""OAuth authorization-code flows that connect a configuration, for every provider whose
destination registers an `OAuthFlow` (shared/sinks/oauth.py; Stripe Connect and Xero).

`start` (an admin) records a signed state naming the configuration and returns the URL the
user's browser opens: our own `begin`, which binds the state to that browser (a cookie)
and redirects to the provider. The provider sends the browser to `callback`, which claims
the state (once, durably: see oauth_state.py), exchanges the code at the provider's token
URL (the provider's flow, looked up in shared/sinks/registry.py: an unknown provider is a
400), stores the tokens as an encrypted credential and attaches it. A failed exchange
releases the state. Token responses are secrets: they are never logged or returned.

Each flow's settings are its own class (`OAuthFlow.settings_type`), built here once per
registered flow from the environment, or given (tests point them at a fake)."""

from __future__ import annotations

import os
from collections.abc import Mapping
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
from shared.credentials import Credential
from shared.logging import get_logger
from shared.sinks import registry
from shared.sinks.oauth import ERROR_CODE, OAuthClientSettings, OAuthError, OAuthFlow

log = get_logger(__name__)


class OAuthService:
    def __init__(
        self,
        control: ControlSettings,
        engine: AsyncEngine,
        flow_settings: Mapping[str, OAuthClientSettings] | None = None,
    ) -> None:
        """`flow_settings`: a registered flow's settings by provider name, in place of
        those read from the environment."""
        self.control = control
        self.flow_settings = _flow_settings(flow_settings or {})
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

    def configured(self, provider: str) -> bool:
        """Whether `provider` has a flow and this server holds what it needs."""
        flow = registry.oauth_flow(provider)
        return flow is not None and flow.configured(self.flow_settings[provider])

    def authorize_origins(self) -> list[str]:
        """Every flow's authorize page origin (the console's CSP allows them)."""
        flows = registry.oauth_flows()
        return sorted({flows[n].authorize_origin(s) for n, s in self.flow_settings.items()})

    def authorize_url(self, provider: str, state: str) -> str:
        """The provider's authorize URL carrying `state` (refused when not configured)."""
        flow = _flow(provider)
        try:
            return flow.authorize_url(
                self.flow_settings[provider], self.redirect_uri(provider), state
            )
        except OAuthError as exc:
            raise _api_error(exc) from None

    async def credential(
        self, provider: str, config_id: str, code: str, destination: Destination
    ) -> Credential:
        """The code exchanged (by the provider's registered flow) for a credential."""
        assert self._session is not None
        try:
            return await _flow(provider).exchange(
                self._session,
                self.flow_settings[provider],
                config_id=config_id,
                code=code,
                redirect_uri=self.redirect_uri(provider),
                destination=destination,
            )
        except OAuthError as exc:
            raise _api_error(exc) from None


def _flow_settings(given: Mapping[str, OAuthClientSettings]) -> dict[str, OAuthClientSettings]:
    """One settings object per registered flow: the given one, else its own class read from
    the environment."""
    flows: dict[str, OAuthFlow[Any]] = registry.oauth_flows()
    built: dict[str, OAuthClientSettings] = {}
    for name, flow in flows.items():
        settings = given.get(name)
        if settings is not None and not isinstance(settings, flow.settings_type):
            raise TypeError(f"the {name} flow's settings are a {flow.settings_type.__name__}")
        built[name] = settings if settings is not None else flow.settings_type()
    unknown = sorted(set(given) - set(flows))
    if unknown:
        raise ValueError(f"settings given for {unknown}, which register no OAuth flow")
    return built


def _api_error(exc: OAuthError) -> ApiError:
    return provider_error(str(exc)) if exc.provider_side else validation_error(str(exc))


def _flow(provider: str) -> OAuthFlow[Any]:
    flow = registry.oauth_flow(provider)
    if flow is None:
        names = " or ".join(sorted(registry.oauth_flows())) or "none configured"
        raise validation_error(
            f"provider must be {names}", [{"field": "provider", "message": names}]
        )
    return flow


def _provider(request: web.Request) -> str:
    provider = request.match_info["provider"]
    _flow(provider)
    return provider


def _config_for(ctx: ControlContext, provider: str, config_id: str) -> Destination:
    config = ctx.configs.require(config_id)
    if config.destination.family != _flow(provider).family:
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
        code = q["error"] if ERROR_CODE.match(q["error"]) else "error"
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
    credential = await ctx.oauth.credential(provider, config_id, code, destination)
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
