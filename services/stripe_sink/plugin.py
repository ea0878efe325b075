"""What the Stripe destination registers with the shared parts (shared/sinks/registry.py):
its error codes, OAuth (Stripe Connect), CLI subcommand and money limits."""

from __future__ import annotations

from services.stripe_sink.cli import register as register_cli
from shared.money import STRIPE_MAX_MINOR_UNITS, STRIPE_MINIMUM_CHARGE
from shared.sinks.registry import DestinationPlugin, MoneyLimits, OAuthProvider, register

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
            ),
        ),
        money=MoneyLimits(STRIPE_MAX_MINOR_UNITS, STRIPE_MINIMUM_CHARGE),
    )
)
