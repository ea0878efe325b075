"""What the Xero destination registers with the shared parts (shared/sinks/registry.py):
its error codes, OAuth provider (code flow with rotating refresh tokens) and CLI command."""

from __future__ import annotations

from services.xero_sink.cli import register as register_cli
from services.xero_sink.oauth import XeroFlow
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
                authorize_url="https://login.xero.com/identity/connect/authorize",
                token_url="https://identity.xero.com/connect/token",
                scopes="openid profile email accounting.transactions accounting.contacts "
                "accounting.settings offline_access",
                rotating_refresh_tokens=True,
                flow=XeroFlow(),
            ),
        ),
    )
)
