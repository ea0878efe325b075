"""Settings of the inbound webhook endpoint (env prefix BILLSYNC_WEBHOOKS_)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.kafka.topics import TopicSpec
from shared.settings import Settings


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLSYNC_WEBHOOKS_", extra="ignore")

    # Loopback unless the operator opens it (BILLSYNC_WEBHOOKS_HOST=0.0.0.0): providers
    # usually reach it through a reverse proxy, and /metrics is served on the same port.
    host: str = "127.0.0.1"
    port: int = 8090
    tolerance_seconds: int = 300
    # Processed event ids (compacted; prefixed like every topic). Kept 7 days: Stripe
    # retries a failed delivery for up to 3 days.
    events_topic: str = "stripe-webhook-events"
    events_retention_ms: int = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class ExpiringCompactedTopic(TopicSpec):
    """Compacted and time-bounded: one record per key, and keys that stop mattering expire."""

    retention_ms: int = 7 * 24 * 3600 * 1000

    def config(self) -> dict[str, str]:
        return {
            **super().config(),
            "cleanup.policy": "compact,delete",
            "retention.ms": str(self.retention_ms),
        }


def events_topic(settings: Settings, hooks: WebhookSettings) -> str:
    return f"{settings.topics.prefix}{hooks.events_topic}"


def webhook_topic_specs(settings: Settings, hooks: WebhookSettings) -> list[TopicSpec]:
    name = events_topic(settings, hooks)
    return [ExpiringCompactedTopic(name, 1, True, hooks.events_retention_ms)]
