"""`SalesforceDestination`: SALESFORCE bills into bill and line records of the org."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from shared.contracts import (
    Destination,
    ExternalSystem,
    IntegrationConfig,
    SalesforceIntegrationConfig,
)
from shared.contracts.config import SalesforceTriggerType
from shared.credentials import Credential
from shared.credentials.models import SalesforceCredential
from shared.sinks.batching import BatchDestination, BatchPolicy
from shared.sinks.classify import classify_response
from shared.sinks.destination import DeliveryRequest, ProviderCalls
from shared.sinks.errors import (
    AuthenticationError,
    FatalBillError,
    RateLimitedError,
    RetriableError,
    SinkError,
)
from shared.sinks.limits import ProviderLimits, Scope
from shared.sinks.ratelimit import RateSpec

from .client import (
    SalesforceApi,
    SalesforceApiError,
    SalesforceAuthError,
    UsageExhaustedError,
)
from .delivery import BatchDelivery, Outcome
from .errors import CONCURRENT_LIMIT_RETRY_SECONDS, DAILY_LIMIT_RETRY_SECONDS
from .mapping import CUSTOMER_TABLE

# Salesforce limits by day and by concurrency, not per second; this only keeps a burst
# polite (a Composite call carries up to 1,000 records).
CALLS_PER_SECOND = 20.0
CONCURRENT_PER_ORG = 25  # long-running concurrent requests per org
# EVENT: a bill waits at most this long for companions; 200 bills fill a batch (a batch of
# 200 bills is 1 to 2 Composite calls for ordinary bills: see mapping.plan_upserts).
EVENT_BATCH = BatchPolicy(max_size=200, max_linger=1.0)


class SalesforceDestination(BatchDestination[SalesforceApi]):
    """The batch path: EVENT bills are batched with whatever waits for the same org and
    settings; SCHEDULE bills are collected by the framework and delivered at the
    configuration's interval, each bill's latest version once."""

    family = "salesforce"
    external_system = ExternalSystem.SALESFORCE
    customer_table = CUSTOMER_TABLE
    credential_type = SalesforceCredential

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        concurrent: int = CONCURRENT_PER_ORG,
        policy: BatchPolicy = EVENT_BATCH,
    ) -> None:
        self.timeout = timeout
        self.concurrent = concurrent
        self.batch_policy = policy

    def rate_spec(self, destination: Destination, credential: Credential) -> RateSpec:
        return RateSpec(CALLS_PER_SECOND)

    def provider_limits(
        self, destination: Destination, credential: Credential
    ) -> ProviderLimits | None:
        # The daily allocation is the org's (its size arrives on every answer): the client
        # paces itself from Sforce-Limit-Info instead of a fixed daily figure here.
        return ProviderLimits(concurrent=self.concurrent, scope=Scope.CREDENTIAL)

    def schedule_interval(self, config: IntegrationConfig) -> float | None:
        """SCHEDULE collects bills and sends them as one batch per interval (hourly)."""
        if not isinstance(config, SalesforceIntegrationConfig):
            return None
        dest = config.destination_config
        if dest.trigger_type is SalesforceTriggerType.SCHEDULE:
            return float(dest.schedule_interval_seconds)
        return None

    def make_client(self, destination: Destination, credential: Credential) -> SalesforceApi:
        if not isinstance(credential, SalesforceCredential):
            raise AuthenticationError(f"credential {credential.id} is not a Salesforce credential")
        return SalesforceApi(credential, timeout=self.timeout, concurrent=self.concurrent)

    async def close_client(self, client: SalesforceApi) -> None:
        await client.close()

    def classify(self, exc: BaseException) -> SinkError | None:
        if isinstance(exc, UsageExhaustedError):
            # No call was made; 429 as the framework's own quota refusal says it.
            return RateLimitedError(
                str(exc),
                retry_after=DAILY_LIMIT_RETRY_SECONDS,
                status_code=429,
                provider_code="API_USAGE",
            )
        if isinstance(exc, SalesforceApiError):
            error = classify_response(
                exc.status, str(exc), provider_code=exc.code, headers=dict(exc.headers)
            )
            if exc.code == "REQUEST_LIMIT_EXCEEDED":
                daily = "TotalRequests" in str(exc)
                return RateLimitedError(
                    error.message,
                    retry_after=DAILY_LIMIT_RETRY_SECONDS
                    if daily
                    else CONCURRENT_LIMIT_RETRY_SECONDS,
                    status_code=exc.status,
                    provider_code=exc.code,
                )
            return error
        if isinstance(exc, SalesforceAuthError):
            if exc.status is None and exc.error in ("unreachable", "unavailable"):
                return RetriableError(str(exc), provider_code=exc.error)
            return AuthenticationError(
                f"{exc}; check the credential's connected app, user and login host",
                status_code=exc.status,
                provider_code=exc.error,
            )
        if isinstance(exc, (TimeoutError, aiohttp.ClientError)):
            return classify_response(None, f"Salesforce unreachable: {type(exc).__name__}: {exc}")
        return None

    async def deliver_batch(
        self,
        requests: Sequence[DeliveryRequest],
        client: SalesforceApi,
        calls: ProviderCalls,
    ) -> list[Outcome]:
        """One outcome per request, in order (the framework's batch contract)."""
        outcomes: list[Outcome | None] = [None] * len(requests)
        groups: dict[str, tuple[SalesforceIntegrationConfig, list[int]]] = {}
        for index, request in enumerate(requests):
            config = request.config
            if not isinstance(config, SalesforceIntegrationConfig):
                outcomes[index] = FatalBillError(
                    f"configuration {config.id} is not a Salesforce configuration"
                )
                continue
            settings = config.destination_config.model_dump_json()
            groups.setdefault(settings, (config, []))[1].append(index)
        for first, members in groups.values():
            delivery = BatchDelivery(first, client, calls)
            results = await delivery.run([requests[i] for i in members])
            for index, outcome in zip(members, results, strict=True):
                outcomes[index] = outcome
        return [o for o in outcomes if o is not None]
