"""What the Xero destination registers with the shared parts (shared/sinks/registry.py):
its error codes, OAuth provider (code flow with rotating refresh tokens) and CLI command."""

from __future__ import annotations

from services.xero_sink.cli import register as register_cli
from services.xero_sink.oauth import AUTHORIZE_URL, SCOPES, TOKEN_URL, XeroFlow
from shared.sinks.registry import DestinationPlugin, OAuthProvider, register

register(
    DestinationPlugin(
        family="xero",
        # Xero's 401/403 details: an expired or unknown token, a tenant not connected.
        auth_codes=frozenset(
            {"AuthenticationUnsuccessful", "TokenExpired", "AuthorizationUnsuccessful"}
        ),
        cli=register_cli,
        oauth=(
            OAuthProvider(
                name="xero",
                authorize_url=AUTHORIZE_URL,
                token_url=TOKEN_URL,
                scopes=SCOPES,
                rotating_refresh_tokens=True,
                flow=XeroFlow(),
            ),
        ),
    )
)
