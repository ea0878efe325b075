"""`POST /webhooks/stripe/{configId}`: verify, de-duplicate, publish the invoice's new
status (the Stripe sink applies it to the invoice map, which only sinks write). Non-2xx
answers make Stripe retry, so a failure to write anything durable is a 500, never a
silent 200."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.webhooks import metrics as m
from services.webhooks.events import (
    EventBodyError,
    StripeEvent,
    parse_event,
    status_update,
)
from services.webhooks.signature import SignatureError, verify
from services.webhooks.state import WebhookState
from shared.contracts import ExternalStatusUpdate
from shared.logging import get_logger
from shared.settings import Settings
from shared.sinks.locks import KeyedLocks

log = get_logger("webhooks")

SecretLookup = Callable[[str], str | None]
SIGNATURE_HEADER = "Stripe-Signature"


def stripe_webhook_routes(
    settings: Settings,
    secret_for_config: SecretLookup,
    producer: AIOKafkaProducer,
    state: WebhookState | None = None,
) -> list[web.RouteDef]:
    """Routes for an aiohttp app. Pass a started `WebhookState` to own its lifecycle;
    without one, the state is created and started on the first request."""
    handler = _StripeHandler(settings, secret_for_config, state or WebhookState(settings, producer))
    return [web.post("/webhooks/stripe/{configId}", handler.handle)]


def _answer(outcome: str, status: int, message: str, **extra: Any) -> web.Response:
    m.RECEIVED.labels("stripe", outcome).inc()
    return web.json_response({"status": outcome, "message": message, **extra}, status=status)


class _StripeHandler:
    def __init__(self, settings: Settings, secrets: SecretLookup, state: WebhookState) -> None:
        self.settings = settings
        self.secrets = secrets
        self.state = state
        self.results_topic = settings.topics.name("integration_results")
        self._start_lock = asyncio.Lock()
        self._event_locks = KeyedLocks()

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if not self.state.started:
                await self.state.start()

    async def handle(self, request: web.Request) -> web.Response:
        config_id = request.match_info["configId"]
        body = await request.read()
        bound = log.bind(path_config_id=config_id)
        secret = self.secrets(config_id)
        if secret is None:
            bound.warning("webhook_no_secret")
            return _answer(
                "no_secret",
                400,
                "no Stripe webhook secret is configured for this configuration's credential",
            )
        try:
            verify(
                request.headers.get(SIGNATURE_HEADER),
                body,
                secret,
                self.state.hooks.tolerance_seconds,
            )
        except SignatureError as exc:
            bound.warning("webhook_signature_refused", reason=str(exc))
            return _answer("bad_signature", 400, str(exc))
        try:
            event = parse_event(body)
        except EventBodyError as exc:
            bound.warning("webhook_body_refused", reason=str(exc))
            return _answer("bad_body", 400, str(exc))
        await self._ensure_started()
        async with self._event_locks.hold(event.id):  # concurrent redeliveries: one wins
            if self.state.seen(event.id):
                return _answer("duplicate", 200, "event already processed", id=event.id)
            update = status_update(event, config_id)
            if update is None:
                return _answer("ignored", 200, f"event type {event.type} is not tracked")
            try:
                await self._apply(event, update)
            except KafkaError as exc:
                bound.error("webhook_not_recorded", event_id=event.id, error=repr(exc))
                return _answer("error", 500, "could not record the event; retry later")
        bound.info(
            "webhook_processed",
            event_id=event.id,
            event_type=event.type,
            integration_config_id=update.integration_config_id,
            bill_id=update.entity_id,
            external_status=update.external_status.value,
        )
        return _answer(
            "accepted", 200, "recorded", id=event.id, externalStatus=update.external_status.value
        )

    async def _apply(self, event: StripeEvent, update: ExternalStatusUpdate) -> None:
        key = (update.integration_config_id or "").encode()
        await self.state.producer.send_and_wait(self.results_topic, update.to_bytes(), key=key)
        # Last: a crash before this line makes Stripe's retry publish the same update again
        # (same id), which consumers de-duplicate; the reverse order could lose it.
        await self.state.mark(event.id, event.type, update.integration_config_id or "")
