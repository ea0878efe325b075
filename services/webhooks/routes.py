"""`POST /webhooks/stripe/{configId}`: verify, de-duplicate, publish the invoice's new
status (the Stripe sink applies it to the invoice map, which only sinks write). Non-2xx
answers make Stripe retry, so a failure to write anything durable is a 500, never a
silent 200.

The path's configuration chooses the secret, so a valid signature proves only that the
sender holds that configuration's secret. The event then names a bill and a configuration
in the invoice's metadata; it is applied only when the invoice map says that invoice is
that bill's invoice for that configuration, and that configuration is the path's own or
one with the same webhook secret (one Stripe account serving several configurations).
An unknown configuration id is answered exactly like a known one with a bad signature."""

from __future__ import annotations

import asyncio
import hmac
import secrets as random_secrets
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
from shared.sinks.invoice_map import InvoiceMapRecord, InvoiceState, map_key
from shared.sinks.locks import KeyedLocks

log = get_logger("webhooks")

SecretLookup = Callable[[str], str | None]
SIGNATURE_HEADER = "Stripe-Signature"
MAX_BODY_BYTES = 1024 * 1024  # Stripe's events are a few KB; aiohttp refuses more (413)


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


_IN_PROGRESS = "billsync has not recorded this bill's invoice yet; retry later"


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
        # Checked against when a configuration has no secret, so that an unknown id costs
        # and answers the same as a known one: nothing tells which ids exist.
        self._decoy = random_secrets.token_hex(32)

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if not self.state.started:
                await self.state.start()

    async def handle(self, request: web.Request) -> web.Response:
        config_id = request.match_info["configId"]
        bound = log.bind(path_config_id=config_id[:200])
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _answer("too_large", 413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        secret = self.secrets(config_id)
        if secret is None:
            bound.warning("webhook_no_secret")
        try:
            verify(
                request.headers.get(SIGNATURE_HEADER),
                body,
                secret or self._decoy,
                self.state.hooks.tolerance_seconds,
            )
        except SignatureError as exc:
            if secret is not None:
                bound.warning("webhook_signature_refused", reason=str(exc))
            return _answer("bad_signature", 400, str(exc))
        if secret is None:  # the decoy cannot verify; never go on without a real secret
            return _answer("bad_signature", 400, "no signature matches the payload")
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
            refusal = self._not_owned(update, config_id, secret)
            if refusal is not None:
                bound.warning(
                    "webhook_not_owned",
                    event_id=event.id,
                    integration_config_id=(update.integration_config_id or "")[:200],
                    reason=refusal,
                )
                if refusal == _IN_PROGRESS:
                    return _answer("retry", 503, refusal)
                return _answer("not_owned", 200, refusal)
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

    def _not_owned(
        self, update: ExternalStatusUpdate, path_config_id: str, secret: str
    ) -> str | None:
        """Why this endpoint may not apply the update (None: it may)."""
        target = update.integration_config_id or path_config_id
        if target != path_config_id:
            other = self.secrets(target)
            if other is None or not hmac.compare_digest(other.encode(), secret.encode()):
                return "the invoice belongs to a configuration this endpoint does not serve"
        if not update.entity_id:
            return "the invoice carries no billsync bill id: it was not made by billsync"
        record: InvoiceMapRecord | None = self.state.invoice_map.get(
            map_key(target, update.entity_id)
        )
        if record is not None and record.external_id == update.external_id:
            return None
        if record is None or record.state is InvoiceState.PENDING:
            # Being written, or written a moment ago and not yet read here: Stripe retries
            # a 503 for days, so a real status is late rather than lost.
            return _IN_PROGRESS
        return "the invoice map names another invoice for this bill and configuration"

    async def _apply(self, event: StripeEvent, update: ExternalStatusUpdate) -> None:
        key = (update.integration_config_id or "").encode()
        await self.state.producer.send_and_wait(self.results_topic, update.to_bytes(), key=key)
        # Last: a crash before this line makes Stripe's retry publish the same update again
        # (same id), which consumers de-duplicate; the reverse order could lose it.
        await self.state.mark(event.id, event.type, update.integration_config_id or "")
