"""What the Salesforce destination registers with the shared parts (shared/sinks/registry.py):
its error codes for the one classifier, its OAuth provider (the web-server flow) and its
CLI subcommand."""

from __future__ import annotations

from services.salesforce_sink.cli import register as register_cli
from services.salesforce_sink.errors import AUTH_CODES, RATE_LIMIT_CODES
from shared.sinks.registry import DestinationPlugin, OAuthProvider, register

register(
    DestinationPlugin(
        family="salesforce",
        rate_limit_codes=RATE_LIMIT_CODES,
        auth_codes=AUTH_CODES,
        cli=register_cli,
        oauth=(
            OAuthProvider(
                name="salesforce",
                authorize_url="https://login.salesforce.com/services/oauth2/authorize",
                token_url="https://login.salesforce.com/services/oauth2/token",
                scopes="api refresh_token",
                rotating_refresh_tokens=False,
            ),
        ),
    )
)
