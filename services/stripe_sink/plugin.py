"""What the Stripe destination registers with the shared parts (shared/sinks/registry.py):
its error codes, OAuth (Stripe Connect), CLI subcommand and money limits."""

from __future__ import annotations

from services.stripe_sink.cli import register as register_cli
from services.stripe_sink.money import LIMITS
from services.stripe_sink.oauth import StripeConnectFlow
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
                authorize_url="https://connect.stripe.com/oauth/authorize",
                token_url="https://connect.stripe.com/oauth/token",
                scopes="read_write",
                flow=StripeConnectFlow(),
            ),
        ),
        money=LIMITS,
    )
)
