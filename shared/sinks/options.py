"""Tunables of every sink (env prefix BILLSYNC_SINK_)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.sinks.backoff import RetryPolicy


class SinkOptions(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLSYNC_SINK_", extra="ignore")

    max_attempts: int = 8
    retry_base_delay: float = 0.5
    retry_max_delay: float = 60.0
    per_config_concurrency: int = 4
    max_concurrency: int = 64
    max_in_flight: int = 2000  # envelopes held before fetching pauses (backpressure)
    commit_interval: float = 0.5
    # One provider call (a batch's too), from the moment the rate limiter admits it: time
    # spent waiting for the limiter behind a backlog is not counted.
    delivery_timeout: float = 120.0
    # How long a stop / a revoked partition waits for deliveries already calling the
    # provider; everything else is abandoned uncommitted and delivered by the next owner.
    stop_grace: float = 10.0
    revoke_grace: float = 10.0

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.retry_base_delay, self.retry_max_delay)
