"""`BatchingDestination`: the minimal batch-path destination for `FakeBatching`.

It proves the framework's batch path, limits, token refresh and schedule end to end; it is
not a product destination. It serves XERO configurations with XERO credentials (the
shapes that exist: a tenant, OAuth client and rotating tokens), on the `xero` dispatch
topic, so it never runs beside a real Xero sink in one namespace.

Recovery story: invoices are upserted by our own reference (configuration id + bill id),
so a retry after a timeout, a 5xx or a crash updates the invoice the first attempt may
have made instead of making a second one; a finalized invoice is answered per item as
locked and never changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from shared.contracts import Destination, ExternalSystem, IntegrationConfig, RunStatus
from shared.credentials import Credential, XeroCredential
from shared.money import format_decimal
from shared.sinks.batching import BatchDestination, BatchPolicy, Outcome
from shared.sinks.classify import classify_response
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.errors import (
    AuthenticationError,
    FatalBillError,
    InvoiceLockedError,
    SinkError,
)
from shared.sinks.invoice_map import InvoiceState
from shared.sinks.limits import ProviderLimits, RateHeaders, Scope, Window
from shared.sinks.ratelimit import RateSpec
from shared.sinks.token_refresh import TokenRefresher

MAX_TOTAL = Decimal("1000000")
DEFAULT_POLICY = BatchPolicy(50, 0.5)


class BatchingApiError(Exception):
    def __init__(
        self, status: int | None, code: str | None, message: str, headers: dict[str, str]
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


@dataclass(frozen=True)
class BatchAnswer:
    results: list[dict[str, Any]]
    headers: RateHeaders


class BatchingClient:
    def __init__(
        self,
        api_base: str,
        credential: XeroCredential,
        tokens: TokenRefresher | None,
        timeout: float,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.credential = credential
        self.tenant = credential.tenant_id or ""
        self._tokens = tokens
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))

    async def _headers(self) -> dict[str, str]:
        if self._tokens is not None:
            token = await self._tokens.access_token(self.credential)
        else:
            token = (
                self.credential.access_token.get_secret_value()
                if self.credential.access_token
                else ""
            )
        return {"Authorization": f"Bearer {token}", "Tenant-Id": self.tenant}

    async def upsert(self, invoices: list[dict[str, Any]]) -> BatchAnswer:
        try:
            async with self._session.post(
                f"{self.api_base}/v1/invoices/batch",
                json={"invoices": invoices},
                headers=await self._headers(),
            ) as resp:
                body = await resp.json(content_type=None)
                headers = dict(resp.headers)
                if resp.status != 200:
                    error = (body or {}).get("error", {})
                    raise BatchingApiError(
                        resp.status, error.get("code"), error.get("message", ""), headers
                    )
                return BatchAnswer(body["results"], rate_headers(headers))
        except aiohttp.ClientError as exc:
            raise BatchingApiError(None, None, f"{type(exc).__name__}", {}) from exc

    async def close(self) -> None:
        await self._session.close()


def rate_headers(headers: dict[str, str]) -> RateHeaders:
    def number(name: str) -> int | None:
        value = headers.get(name)
        return int(value) if value is not None and value.isdigit() else None

    return RateHeaders(number("X-MinLimit-Remaining"), 60.0, number("X-DayLimit-Remaining"))


def reference(request: DeliveryRequest) -> str:
    return f"{request.config.id}:{request.envelope.bill.id}"


def plan_item(request: DeliveryRequest) -> dict[str, Any]:
    """The invoice for one bill; FatalBillError for what the provider would refuse."""
    bill = request.envelope.bill
    total = bill.bill_total or sum((li.subtotal for li in bill.line_items), Decimal(0))
    if abs(total) >= MAX_TOTAL:
        raise FatalBillError(
            f"bill {bill.id} totals {format_decimal(total)} {bill.currency}; the "
            f"provider accepts totals below {format_decimal(MAX_TOTAL)}"
        )
    return {
        "reference": reference(request),
        "customer": request.customer_id,
        "currency": bill.currency,
        "total": format_decimal(total),
        "lines": [
            {"description": li.description or li.id, "amount": format_decimal(li.subtotal)}
            for li in bill.line_items
        ],
    }


class BatchingDestination(BatchDestination[BatchingClient]):
    family = "xero"
    external_system = ExternalSystem.XERO
    customer_table = "Contact"
    credential_type = XeroCredential

    def __init__(
        self,
        api_base: str,
        *,
        limits: ProviderLimits | None = None,
        policy: BatchPolicy = DEFAULT_POLICY,
        tokens: TokenRefresher | None = None,
        timeout: float = 30.0,
        scheduled: dict[str, float] | None = None,
    ) -> None:
        self.api_base = api_base
        self.limits = limits or ProviderLimits(
            (Window(60, 60.0),), concurrent=5, daily=5000, scope=Scope.TENANT
        )
        self.batch_policy = policy
        self.tokens = tokens
        self.timeout = timeout
        self.scheduled = scheduled or {}  # configuration id -> seconds between deliveries

    def rate_spec(self, destination: Destination, credential: Credential) -> RateSpec:
        return RateSpec(None)

    def provider_limits(
        self, destination: Destination, credential: Credential
    ) -> ProviderLimits | None:
        return self.limits

    def schedule_interval(self, config: IntegrationConfig) -> float | None:
        return self.scheduled.get(config.id)

    def tenant_of(self, config: IntegrationConfig, credential: Credential) -> str | None:
        return credential.tenant_id if isinstance(credential, XeroCredential) else None

    def make_client(self, destination: Destination, credential: Credential) -> BatchingClient:
        if not isinstance(credential, XeroCredential):
            raise AuthenticationError(f"credential {credential.id} is not a XERO credential")
        return BatchingClient(self.api_base, credential, self.tokens, self.timeout)

    async def close_client(self, client: BatchingClient) -> None:
        await client.close()

    def classify(self, exc: BaseException) -> SinkError | None:
        if isinstance(exc, BatchingApiError):
            return classify_response(
                exc.status, exc.message or "no answer", provider_code=exc.code, headers=exc.headers
            )
        return None

    async def deliver_batch(
        self, requests: Sequence[DeliveryRequest], client: BatchingClient, calls: ProviderCalls
    ) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(requests)
        items: list[tuple[int, dict[str, Any]]] = []
        for i, request in enumerate(requests):
            try:
                items.append((i, plan_item(request)))
            except FatalBillError as err:  # refused before the call; neighbours go on
                outcomes[i] = err
        if items:
            payload = [item for _, item in items]
            answer = await calls.call(
                "POST /v1/invoices/batch", lambda: client.upsert(payload), write=True
            )
            calls.observe(answer.headers)
            for (i, _), result in zip(items, answer.results, strict=True):
                outcomes[i] = self._outcome(result, requests[i])
        return [o if o is not None else FatalBillError("no answer for this bill") for o in outcomes]

    def _outcome(self, result: dict[str, Any], request: DeliveryRequest) -> Outcome:
        errors = result.get("errors") or []
        external_id = result.get("id")
        url = f"{self.api_base}/invoices/{external_id}" if external_id else None
        if any(e.get("code") == "locked" for e in errors):
            return InvoiceLockedError(
                f"invoice {external_id} is finalized at the provider; billsync does not "
                f"change it. Credit or re-issue it there."
            )
        if errors:
            return FatalBillError("; ".join(str(e.get("message")) for e in errors))
        return DeliveryResult(RunStatus.COMPLETE, InvoiceState.DRAFT, external_id, url)
