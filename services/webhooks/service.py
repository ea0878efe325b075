"""`billsync webhooks`: the inbound endpoint as its own service, with /health and /metrics.

Webhook secrets come from each configuration's Stripe credential, decrypted on demand."""

from __future__ import annotations

from typing import Any

from services.webhooks.routes import stripe_webhook_routes
from services.webhooks.settings import WebhookSettings
from services.webhooks.state import WebhookState
from shared.contracts import Destination, IntegrationConfig, parse_config
from shared.credentials import CredentialCipher, StripeCredential
from shared.credentials.store import CredentialStore
from shared.kafka.producer import make_producer
from shared.kafka.table import CompactedTable
from shared.kafka.topics import ensure_topics
from shared.logging import get_logger
from shared.observability import ObservabilityServer
from shared.settings import Settings

log = get_logger("webhooks")

_STRIPE = {Destination.STRIPE, Destination.STRIPE_TEST}


class WebhookService:
    def __init__(self, settings: Settings, hooks: WebhookSettings | None = None) -> None:
        self.settings = settings
        self.hooks = hooks or WebhookSettings()
        bootstrap = settings.kafka_bootstrap_servers
        self.configs = CompactedTable[IntegrationConfig](
            settings.topics.name("integration_configs"), bootstrap, parse_config
        )
        self.credentials = CredentialStore(
            settings.topics.name("credentials"),
            bootstrap,
            CredentialCipher(settings.credentials_key),
        )
        self.producer = make_producer(bootstrap)
        self.state = WebhookState(settings, self.producer, self.hooks)
        routes = stripe_webhook_routes(settings, self.secret_for_config, self.producer, self.state)
        self.http = ObservabilityServer("webhooks", self._health, extra_routes=routes)
        self.port: int | None = None

    def secret_for_config(self, config_id: str) -> str | None:
        config = self.configs.get(config_id)
        if config is None or config.destination not in _STRIPE:
            return None
        if not config.integration_credentials_id:
            return None
        credential = self.credentials.get(config.integration_credentials_id)
        if not isinstance(credential, StripeCredential) or credential.webhook_secret is None:
            return None
        return credential.webhook_secret.get_secret_value()

    def _health(self) -> dict[str, Any]:
        tables = (
            self.configs,
            self.credentials.table,
            self.state.processed,
        )
        return {
            "ok": self.state.started and all(t.ready.is_set() for t in tables),
            "configurations": len(self.configs.data),
        }

    async def start(self) -> None:
        await ensure_topics(self.settings)
        await self.producer.start()
        await self.configs.start()
        await self.credentials.start()
        await self.state.start()
        self.port = await self.http.start(self.hooks.host, self.hooks.port)
        log.info("webhooks_started", port=self.port)

    async def stop(self) -> None:
        await self.http.stop()
        await self.state.stop()
        await self.credentials.stop()
        await self.configs.stop()
        await self.producer.stop()
