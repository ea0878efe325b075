"""What the Stripe destination registers with the shared parts (shared/sinks/registry.py):
its error codes, OAuth (Stripe Connect), CLI subcommand and money limits."""

from __future__ import annotations

from services.stripe_sink.cli import register as register_cli
from services.stripe_sink.money import LIMITS
from services.stripe_sink.oauth import AUTHORIZE_URL, SCOPE, TOKEN_URL, StripeConnectFlow
from shared.sinks.registry import DestinationPlugin, OAuthProvider, register

register(
    DestinationPlugin(
        family="stripe",
        rate_limit_codes=frozenset({"rate_limit", "lock_timeout"}),
        auth_codes=frozenset({"authentication_error", "invalid_api_key"}),
        cli=register_cli,
        oauth=(
            OAuthProvider(
                name="stripe",
                authorize_url=AUTHORIZE_URL,
                token_url=TOKEN_URL,
                scopes=SCOPE,
                flow=StripeConnectFlow(),
            ),
        ),
        money=LIMITS,
    )
)
