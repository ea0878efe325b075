"""Configuration of the local Paddle: environment, keys, the per-IP limit and faults.

Patched at runtime with the same JSON shape through ``FakePaddle.configure(...)`` or
``POST /_fake/config``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fakes.common.config import patch_config

ENVIRONMENTS = ("sandbox", "live")
KEY_PREFIXES = {"live": "pdl_live_apikey_", "sandbox": "pdl_sdbx_apikey_"}


@dataclass
class RateLimitConfig:
    """Paddle: 240 requests a minute per client IP (every key together); a 429 carries
    Retry-After and blocks the IP for 60 s. Smaller figures make benchmarks short."""

    enabled: bool = True
    per_window: int = 240
    window_seconds: float = 60.0
    block_seconds: float = 60.0


@dataclass
class FaultRule:
    """Fail the next ``count`` requests whose path starts with ``path_prefix``."""

    path_prefix: str = "/"
    status: int = 500
    count: int = 1
    method: str | None = None
    action: str = "status"  # status | drop_before_commit | drop_after_commit


@dataclass
class FaultConfig:
    latency_ms: float = 0.0
    rules: list[FaultRule] = field(default_factory=list)


@dataclass
class FakePaddleConfig:
    environment: str = "sandbox"  # sandbox-api.paddle.com or api.paddle.com
    api_keys: list[str] = field(default_factory=lambda: ["pdl_sdbx_apikey_local"])
    per_page_max: int = 30  # transactions (and the other lists) per page
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["api_keys"] = [mask(k) for k in self.api_keys]  # never echo a key
        return out


def mask(key: str) -> str:
    prefix = next((p for p in KEY_PREFIXES.values() if key.startswith(p)), "")
    return prefix + "*" * 4


def apply_patch(config: FakePaddleConfig, patch: dict[str, Any]) -> None:
    """Apply a partial JSON-shaped update (unknown keys raise ``ValueError``)."""
    patch_config(config, patch, sections=("rate_limits", "faults"), rule=FaultRule)
    if config.environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {ENVIRONMENTS}")
