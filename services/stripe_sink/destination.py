"""`StripeDestination`: STRIPE and STRIPE_TEST bills into Stripe invoices (or pending items)."""

from __future__ import annotations

import secrets
from functools import partial

import aiohttp
import stripe

from shared.contracts import Destination, ExternalSystem, StripeIntegrationConfig
from shared.credentials import Credential
from shared.credentials.models import StripeCredential
from shared.sinks.classify import classify_response
from shared.sinks.destination import (
    DeliveryRequest,
    DeliveryResult,
    ProviderCalls,
    SinkDestination,
)
from shared.sinks.errors import AuthenticationError, FatalBillError, SinkError
from shared.sinks.ratelimit import RateSpec

from .client import StripeApi, api_base_from_env
from .flow import Flow
from .invoice_flow import deliver_invoice, find
from .items_flow import deliver_items
from .mapping import Mode, plan_invoice

LIVE_PER_SECOND = 100.0
TEST_PER_SECOND = 25.0
ENDPOINT_PER_SECOND = 25.0


def _key_mode(api_key: str) -> str | None:
    """'live' or 'test' for sk_/rk_ keys; None for anything else (left to Stripe)."""
    parts = api_key.split("_")
    if len(parts) >= 3 and parts[0] in ("sk", "rk") and parts[1] in ("live", "test"):
        return parts[1]
    return None


class StripeDestination(SinkDestination[StripeApi]):
    family = "stripe"
    external_system = ExternalSystem.STRIPE
    customer_table = "Customer"
    credential_type = StripeCredential

    def __init__(self, api_base: str | None = None, *, timeout: float = 30.0) -> None:
        self.api_base = api_base or api_base_from_env()
        self.timeout = timeout

    def rate_spec(self, destination: Destination, credential: Credential) -> RateSpec:
        live = destination is Destination.STRIPE
        return RateSpec(LIVE_PER_SECOND if live else TEST_PER_SECOND, ENDPOINT_PER_SECOND)

    def make_client(self, destination: Destination, credential: Credential) -> StripeApi:
        if not isinstance(credential, StripeCredential):
            raise AuthenticationError(f"credential {credential.id} is not a Stripe credential")
        api_key = credential.api_key.get_secret_value()
        wanted = "live" if destination is Destination.STRIPE else "test"
        mode = _key_mode(api_key)
        if mode is not None and mode != wanted:
            # A test bill must never reach live Stripe, nor a live bill test mode.
            raise AuthenticationError(
                f"credential {credential.id} holds a {mode}-mode key but the destination is "
                f"{destination.value}; attach a {wanted}-mode key"
            )
        return StripeApi(
            api_key,
            account=credential.connected_account_id,
            api_base=self.api_base,
            timeout=self.timeout,
            livemode=destination is Destination.STRIPE,
        )

    async def close_client(self, client: StripeApi) -> None:
        await client.close()

    def classify(self, exc: BaseException) -> SinkError | None:
        if isinstance(exc, stripe.APIConnectionError):
            return classify_response(None, f"Stripe unreachable: {exc.user_message}")
        if isinstance(exc, stripe.StripeError):
            error = exc.error
            code = exc.code or (error.type if error is not None else None)
            param = f" (param {error.param})" if error is not None and error.param else ""
            request = f" [request {exc.request_id}]" if exc.request_id else ""
            text = exc.user_message or type(exc).__name__
            message = f"Stripe {exc.http_status}: {text}{param}{request}"
            return classify_response(
                exc.http_status, message, provider_code=code, headers=dict(exc.headers or {})
            )
        if isinstance(exc, (TimeoutError, aiohttp.ClientError)):
            return classify_response(None, f"Stripe unreachable: {type(exc).__name__}: {exc}")
        return None

    async def abandon(
        self, request: DeliveryRequest, client: StripeApi, calls: ProviderCalls
    ) -> str | None:
        """Delete the draft a failed first delivery left (finalized ones are complete)."""
        flow = self._flow(request, client, calls)
        if flow.plan.mode is not Mode.INVOICE:
            return None
        invoice = await find(flow)
        if invoice is None or invoice.status != "draft":
            return None
        await flow.delete("DELETE /v1/invoices/{id}", partial(client.delete_invoice, invoice.id))
        return f"removed the incomplete Stripe draft {invoice.id}"

    def _flow(self, request: DeliveryRequest, client: StripeApi, calls: ProviderCalls) -> Flow:
        config = request.config
        if not isinstance(config, StripeIntegrationConfig):
            raise FatalBillError(f"configuration {config.id} is not a Stripe configuration")
        envelope = request.envelope
        plan = plan_invoice(envelope.bill, envelope.account, config, request.customer_id)
        # After a 5xx or no answer: look up first, then write with fresh keys (see Flow).
        generation = secrets.token_hex(6) if request.recovering else None
        return Flow(request, plan, client, calls, generation)

    async def deliver(
        self, request: DeliveryRequest, client: StripeApi, calls: ProviderCalls
    ) -> DeliveryResult:
        flow = self._flow(request, client, calls)
        if flow.plan.mode is Mode.INVOICE:
            return await deliver_invoice(flow)
        return await deliver_items(flow)
