"""What the Paddle destination registers with the shared parts (shared/sinks/registry.py):
its error codes and its CLI subcommand. Paddle has no OAuth for API keys and no money
limits beyond the currencies its mapping checks."""

from __future__ import annotations

from services.paddle_sink.cli import register as register_cli
from shared.sinks.registry import DestinationPlugin, register

register(
    DestinationPlugin(
        family="paddle",
        rate_limit_codes=frozenset({"too_many_requests"}),
        auth_codes=frozenset(
            {"authentication_missing", "authentication_malformed", "invalid_token", "forbidden"}
        ),
        cli=register_cli,
    )
)
