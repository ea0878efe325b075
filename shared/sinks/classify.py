"""The one place that turns a provider's answer into the taxonomy."""

from __future__ import annotations

from collections.abc import Mapping

from shared.redact import scrub_secrets
from shared.sinks import registry
from shared.sinks.errors import (
    AuthenticationError,
    FatalBillError,
    RateLimitedError,
    RetriableError,
    SinkError,
)

# Provider error codes that mean "rate limited" even when the HTTP status says otherwise
# (Salesforce answers 403 REQUEST_LIMIT_EXCEEDED). Codes many providers share are here;
# a destination registers its own from its package (shared/sinks/registry.py).
RATE_LIMIT_CODES = frozenset({"rate_limit", "too_many_requests"})
AUTH_CODES = frozenset({"forbidden", "unauthorized"})


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After in seconds (integer or decimal seconds; HTTP dates are not used by these
    providers). Missing or unreadable gives None."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify_response(
    status: int | None,
    message: str,
    *,
    provider_code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> SinkError:
    """status None means no HTTP answer at all (connection error)."""
    message = scrub_secrets(message)  # providers echo keys in their errors
    retry_after = parse_retry_after(headers)
    if status is None:
        return RetriableError(message, provider_code=provider_code)
    rate_codes = RATE_LIMIT_CODES | registry.rate_limit_codes()
    if status == 429 or (provider_code in rate_codes):
        return RateLimitedError(
            message, retry_after=retry_after, status_code=status, provider_code=provider_code
        )
    if status == 401 or (status == 403 and provider_code in AUTH_CODES | registry.auth_codes()):
        return AuthenticationError(message, status_code=status, provider_code=provider_code)
    if status == 403:
        return AuthenticationError(message, status_code=status, provider_code=provider_code)
    if status in (408, 409) or status >= 500:
        # 409: a concurrent request with the same idempotency key is still in flight.
        return RetriableError(
            message, retry_after=retry_after, status_code=status, provider_code=provider_code
        )
    return FatalBillError(message, status_code=status, provider_code=provider_code)
