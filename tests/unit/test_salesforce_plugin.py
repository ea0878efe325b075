"""The Salesforce package registers its error codes, OAuth provider and CLI with the
framework (shared/sinks/registry.py); the one classifier then knows Salesforce's codes."""

from __future__ import annotations

from shared.sinks import registry
from shared.sinks.classify import classify_response
from shared.sinks.errors import AuthenticationError, RateLimitedError


def test_salesforce_registers_its_codes_oauth_and_cli() -> None:
    plugin = registry.plugins()["salesforce"]
    assert plugin.cli is not None
    provider = registry.oauth_provider("salesforce")
    assert provider is not None and not provider.rotating_refresh_tokens
    limited = classify_response(403, "limit", provider_code="REQUEST_LIMIT_EXCEEDED")
    assert isinstance(limited, RateLimitedError)
    expired = classify_response(401, "session", provider_code="INVALID_SESSION_ID")
    assert isinstance(expired, AuthenticationError)
