"""Configuration of the fake: accepted keys, limits, rate limits, faults and webhooks.

Every section can be patched at runtime with the same JSON shape, through
``FakeStripe.configure(...)`` or ``POST /_fake/config``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fakes.common.config import patch_config


@dataclass
class RateLimitConfig:
    """Sliding one-second windows per API key; ``None`` or ``0`` means unlimited."""

    enabled: bool = True
    live_per_second: int | None = 100
    test_per_second: int | None = 25
    endpoint_per_second: int | None = 25
    # Stricter per-endpoint limits, keyed by "METHOD /path/{id}" (Stripe: search 20/s).
    endpoint_overrides: dict[str, int] = field(
        default_factory=lambda: {
            "GET /v1/invoices/search": 20,
            "GET /v1/customers/search": 20,
        }
    )
    retry_after_seconds: float = 1.0


@dataclass
class FaultRule:
    """Fail the next ``count`` requests whose path starts with ``path_prefix``."""

    path_prefix: str = "/v1/"
    status: int = 500
    count: int = 1
    method: str | None = None
    action: str = "status"  # status | drop_before_commit | drop_after_commit
    # For injected 5xx: saved by the idempotency layer and replayed on retry (None: the
    # ``FaultConfig.errors_replayed`` default).
    replayed: bool | None = None


@dataclass
class FaultConfig:
    seed: int | None = 0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    # Stripe (API v1) saves a 500 once the endpoint began executing and replays it for the
    # same idempotency key; set False to model an error in front of the idempotency layer.
    errors_replayed: bool = True
    drop_before_commit_rate: float = 0.0
    drop_after_commit_rate: float = 0.0
    rules: list[FaultRule] = field(default_factory=list)


@dataclass
class WebhookConfig:
    url: str | None = None
    secret: str | None = None
    events: list[str] | None = None  # None: every event the fake emits
    timeout_seconds: float = 5.0


@dataclass
class FakeStripeConfig:
    api_keys: list[str] = field(default_factory=lambda: ["sk_test_123"])
    # None: any ``acct_...`` id is a connected account; otherwise only these are.
    connected_accounts: list[str] | None = None
    default_currency: str = "usd"
    max_amount_due: int = 99_999_999
    max_lines_per_invoice: int = 250
    idempotency_ttl_seconds: float = 24 * 3600.0
    search_lag_seconds: float = 0.0
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def apply_patch(config: FakeStripeConfig, patch: dict[str, Any]) -> None:
    """Apply a partial JSON-shaped update (unknown keys raise ``ValueError``)."""
    patch_config(config, patch, sections=("rate_limits", "faults", "webhooks"), rule=FaultRule)
    config.api_keys = list(config.api_keys)
