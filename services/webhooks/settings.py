"""Settings of the inbound webhook endpoint (env prefix BILLSYNC_WEBHOOKS_)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLSYNC_WEBHOOKS_", extra="ignore")

    # Loopback unless the operator opens it (BILLSYNC_WEBHOOKS_HOST=0.0.0.0): providers
    # usually reach it through a reverse proxy, and /metrics is served on the same port.
    host: str = "127.0.0.1"
    port: int = 8090
    tolerance_seconds: int = 300
    # Processed event ids live on the `webhook_events` topic (BILLSYNC_TOPIC_WEBHOOK_EVENTS),
    # created with every topic by shared/kafka/topics.py (compacted, kept 7 days).
