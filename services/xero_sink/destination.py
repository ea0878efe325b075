"""`XeroDestination`: XERO bills into Xero invoices (ACCREC) or credit notes (ACCRECCREDIT),
on the framework's batch path: up to 50 documents per call, one outcome per bill.

Limits are Xero's, per organisation (tenant): 60 calls a minute, 5 at once, 5,000 a day,
steered by `X-MinLimit-Remaining` / `X-DayLimit-Remaining` before a 429 happens; a 429
honours `Retry-After`, and one whose `X-Rate-Limit-Problem` is `day` parks only that
organisation until its quota returns (`QuotaExhaustedError`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from shared.contracts import (
    Destination,
    ExternalSystem,
    IntegrationConfig,
    RunStatus,
    XeroIntegrationConfig,
)
from shared.credentials import Credential, XeroCredential
from shared.sinks.batching import BatchDestination, BatchPolicy, Outcome
from shared.sinks.classify import classify_response, parse_retry_after
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.errors import AuthenticationError, FatalBillError, SinkError
from shared.sinks.invoice_map import InvoiceState
from shared.sinks.limits import ProviderLimits, QuotaExhaustedError, Scope, Window
from shared.sinks.ratelimit import RateSpec
from shared.sinks.token_refresh import TokenRefresher

from .client import (
    CustomConnectionTokens,
    XeroApi,
    XeroApiError,
    api_base_from_env,
    token_url_from_env,
)
from .flow import BatchDelivery, Item
from .mapping import plan_document

# Xero's minute, with one second of guard for the time between our booking of a call and
# Xero counting it (otherwise a burst at a window's edge meets the previous one still
# counted there): 57 calls in 61 s, 93% of the limit.
XERO_LIMITS = ProviderLimits((Window(60, 61.0),), concurrent=5, daily=5000, scope=Scope.TENANT)
XERO_BATCH = BatchPolicy(50, 1.0)  # Xero recommends 50 documents or fewer per call


class XeroDestination(BatchDestination[XeroApi]):
    family = "xero"
    external_system = ExternalSystem.XERO
    customer_table = "Contact"
    credential_type = XeroCredential

    def __init__(
        self,
        api_base: str | None = None,
        *,
        token_url: str | None = None,
        refresher: TokenRefresher | None = None,
        limits: ProviderLimits = XERO_LIMITS,
        policy: BatchPolicy = XERO_BATCH,
        timeout: float = 30.0,
    ) -> None:
        self.api_base = api_base or api_base_from_env()
        self.refresher = refresher
        self.custom_tokens = CustomConnectionTokens(token_url or token_url_from_env(), timeout)
        self.limits = limits
        self.batch_policy = policy
        self.timeout = timeout

    def rate_spec(self, destination: Destination, credential: Credential) -> RateSpec:
        return RateSpec(None)  # the provider limits below govern

    def provider_limits(
        self, destination: Destination, credential: Credential
    ) -> ProviderLimits | None:
        return self.limits

    def tenant_of(self, config: IntegrationConfig, credential: Credential) -> str | None:
        return credential.tenant_id if isinstance(credential, XeroCredential) else None

    def make_client(self, destination: Destination, credential: Credential) -> XeroApi:
        if not isinstance(credential, XeroCredential):
            raise AuthenticationError(f"credential {credential.id} is not a Xero credential")
        return XeroApi(
            credential,
            api_base=self.api_base,
            refresher=self.refresher,
            custom=self.custom_tokens,
            timeout=self.timeout,
            window_seconds=min((w.seconds for w in self.limits.windows), default=60.0),
        )

    async def close_client(self, client: XeroApi) -> None:
        await client.close()

    def classify(self, exc: BaseException) -> SinkError | None:
        if not isinstance(exc, XeroApiError):
            return None
        problem = next(
            (v for k, v in exc.headers.items() if k.lower() == "x-rate-limit-problem"), None
        )
        if exc.status == 429 and (problem or "").lower() in ("day", "daily"):
            wait = parse_retry_after(exc.headers) or 3600.0
            return QuotaExhaustedError(
                f"Xero's daily limit for this organisation is spent ({exc.message}); "
                f"waiting {wait:.0f}s for it to return",
                reset_at=datetime.now(UTC) + timedelta(seconds=wait),
                retry_after=wait,
            )
        message = exc.message + (f" (rate limit: {problem})" if problem else "")
        return classify_response(exc.status, message, provider_code=exc.code, headers=exc.headers)

    async def deliver_batch(
        self, requests: Sequence[DeliveryRequest], client: XeroApi, calls: ProviderCalls
    ) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(requests)
        items: list[Item] = []
        for index, request in enumerate(requests):
            config = request.config
            if not isinstance(config, XeroIntegrationConfig):
                outcomes[index] = FatalBillError(f"configuration {config.id} is not a Xero one")
                continue
            try:
                plan = plan_document(
                    request.envelope.bill,
                    request.envelope.account,
                    config,
                    request.customer_id,
                    # Product -> Item/Account, PricingBand -> Item: the request carries them
                    request.mappings.rows,
                )
            except FatalBillError as err:  # refused before any call; neighbours go on
                outcomes[index] = err
                continue
            if plan.skip_reason is not None:
                outcomes[index] = DeliveryResult(
                    RunStatus.SKIPPED, InvoiceState.SKIPPED, message=plan.skip_reason
                )
                continue
            items.append(Item(index, request, plan))
        if items:
            await BatchDelivery(client, calls, outcomes, self.classify).run(items)
        return [
            o if o is not None else FatalBillError("Xero gave no answer for this bill")
            for o in outcomes
        ]
