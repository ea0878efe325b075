"""The one contract every destination implements.

A destination supplies: its credential type, its rate limits, a client, the
classification of its client's exceptions, and `deliver` (mapping a prepared bill to
provider requests). The framework (shared.sinks.runner: the Kafka side in
shared.sinks.consumer, the delivery policy in shared.sinks.policy) owns everything else:
consuming, de-duplication, the invoice map, customer resolution, credentials, retries,
rate limiting, run records, metrics.

What a `DeliveryRequest` carries: the envelope (prepared bill, account, configuration
as routed), `config`, `customer_id`, `existing`, `recovering`, `attempt`, `run_id`, and
`mappings` (`shared.sinks.customers.BillMappings`): every external mapping, in the
destination's `external_system`, of the bill's account, of the products on its lines and
of their pricing bands. `mappings.for_account(table)`, `for_product(product_id, table)`
and `find(entity, m3ter_id, table)` give the best usable one by the configuration's rule
(parented to this configuration, then unparented, then elsewhere; with "enforce external
mappings for config" only this configuration's); `mappings.rows` has them all, for a
destination that must tell "none at all" from "none for this configuration". A
destination reads its mappings from the request, never from the runner.

`customer_id` is resolved by the framework: the m3ter account id, or with "use external
mapping account code" the account's mapping to the destination's `customer_table`
(Stripe Customer, Paddle Customer, Xero Contact, Salesforce Account); an account's
mapping to another table (Paddle's Address, Business) is never taken for the customer.
A missing one ends the run (MissingAccountMappingError) before `deliver` is called.

What the destination contributes to the shared parts (its provider error codes, OAuth
provider and connect flow, CLI subcommands, money limits) is registered from its own
`plugin.py` (shared/sinks/registry.py), never added to a shared module.

Rules for `deliver(request, client, calls)`:

- Every provider request goes through `calls`: `calls.call(endpoint, fn, write=True)` for
  a write, `calls.call(endpoint, fn)` for a read, `calls.read_or_none` where a 404 is an
  answer (deleted, never existed), `calls.delete` for an idempotent delete (404: already
  gone). Reads and deletes answered 5xx are tried again there; writes never are.
- `request.existing` is what the invoice map knows of this bill and configuration, set
  only when it names an external id (an earlier version was delivered, or a previous
  attempt recorded its result): update that invoice, never create a second one.
- `request.recovering` is True when an earlier attempt may have written without the
  result being recorded (a crash left the PENDING marker, or the previous attempt of this
  run failed with a 5xx, a 429 or no answer). Look up what the provider holds for this
  bill and configuration (by the ids written into the provider's metadata) before any
  write, and continue from there; a half-written invoice is completed, never left (and
  when the run still ends in error, `abandon` removes it). Writes after the look-up may
  use fresh idempotency keys: the look-up is what makes them safe.
- Validate against the provider's rules before the first call (FatalBillError), so a bill
  the provider would refuse leaves nothing half-written.
- Return a `DeliveryResult` (`shared.sinks.results`: `done`, `locked`, `skipped`) carrying
  the status, the invoice's state at the provider, the external id and an operator URL,
  and the ids of parts a later version must replace (`external_item_ids`). A finalized or
  paid invoice is never changed: return `locked` (INVOICE_ALREADY_PAID) with what the
  operator can do.
- Raise a SinkError subclass for failures (classified in one place, shared.sinks.classify);
  anything else is a billsync bug and becomes an internal error, not a provider error."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from prometheus_client import Counter, Histogram

from shared.contracts import Destination as DestinationName
from shared.contracts import DispatchEnvelope, ExternalSystem, IntegrationConfig, RunStatus
from shared.credentials import Credential
from shared.sinks.customers import NO_MAPPINGS, BillMappings
from shared.sinks.errors import (
    FatalBillError,
    ProviderTimeoutError,
    RateLimitedError,
    RetriableError,
    SinkError,
)
from shared.sinks.invoice_map import InvoiceMapRecord, InvoiceState
from shared.sinks.limits import ProviderLimits, QuotaLimiter, RateHeaders
from shared.sinks.ratelimit import AdaptiveRateLimiter, RateSpec

ClientT = TypeVar("ClientT")
T = TypeVar("T")

PROVIDER_CALLS = Counter(
    "billsync_sink_provider_calls_total",
    "Provider API calls",
    ["destination", "endpoint", "status"],
)
PROVIDER_LATENCY = Histogram(
    "billsync_sink_provider_call_seconds",
    "Provider API call latency",
    ["destination", "endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RATE_LIMIT_WAIT = Histogram(
    "billsync_sink_rate_limiter_wait_seconds",
    "Time spent waiting for the credential's rate limiter",
    ["destination", "credential_id"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


@dataclass(frozen=True)
class DeliveryRequest:
    envelope: DispatchEnvelope
    config: IntegrationConfig
    customer_id: str
    existing: InvoiceMapRecord | None  # what the map knows (None: never delivered)
    recovering: bool  # an earlier attempt may have written: look up before writing
    attempt: int
    run_id: str
    # The external mappings that concern the bill in the destination's external system
    # (the account's, its lines' products' and pricing bands'): see shared.sinks.customers.
    mappings: BillMappings = NO_MAPPINGS

    @property
    def destination(self) -> DestinationName:
        return self.config.destination


@dataclass(frozen=True)
class DeliveryResult:
    status: RunStatus  # COMPLETE, SKIPPED or INVOICE_ALREADY_PAID
    state: InvoiceState
    external_id: str | None = None
    url: str | None = None
    external_item_ids: list[str] = field(default_factory=list)
    message: str | None = None


class ProviderCalls:
    """Wraps every provider call: rate limiter first, then the timeout, metrics and
    classification.

    A destination's `deliver` makes each request through `call`, e.g.
    `await calls.call("POST /v1/invoices", lambda: client.create(...), write=True)`.
    `timeout` bounds each call from the moment the limiter admits it: waiting for the
    limiter (a backlog, a concurrency slot, a spent window) is not the provider being slow,
    and must not turn into a timeout before the request is even sent."""

    def __init__(
        self,
        destination: str,
        limiter: AdaptiveRateLimiter | QuotaLimiter,
        classify: Callable[[BaseException], SinkError | None],
        credential_id: str = "",
        timeout: float | None = None,
    ) -> None:
        self.destination = destination
        self.credential_id = credential_id
        self.limiter = limiter
        self._classify = classify
        self.timeout = timeout
        self.count = 0

    READ_RETRIES = 2  # extra tries of a read or delete answered 5xx/429/nothing
    READ_RETRY_DELAY = 0.2  # seconds, doubled per try (a 429's Retry-After also applies)

    async def call(
        self,
        endpoint: str,
        fn: Callable[[], Awaitable[T]],
        *,
        write: bool = False,
        idempotent: bool | None = None,
    ) -> T:
        """One provider request. Reads (and any call marked `idempotent`, like a DELETE)
        are tried again a couple of times right here when the answer is retriable: a read
        changes nothing, and the look-ups recovery depends on should not cost a whole
        attempt. Writes are never repeated here: the next attempt looks up first."""
        tries = 1 if write or idempotent is False else 1 + self.READ_RETRIES
        tried = 0
        while True:
            try:
                return await self._once(endpoint, fn, write)
            except RetriableError:
                tried += 1
                if tried >= tries:
                    raise
                await asyncio.sleep(self.READ_RETRY_DELAY * 2 ** (tried - 1))

    async def read_or_none(self, endpoint: str, fn: Callable[[], Awaitable[T]]) -> T | None:
        """A read where 404 (deleted, or never existed) is an answer, not a failure."""
        try:
            return await self.call(endpoint, fn)
        except FatalBillError as err:
            if err.status_code == 404:
                return None
            raise

    async def delete(self, endpoint: str, fn: Callable[[], Awaitable[None]]) -> None:
        """A DELETE is idempotent by nature: 404 means already gone."""
        try:
            await self.call(endpoint, fn, idempotent=True)
        except FatalBillError as err:
            if err.status_code != 404:
                raise

    async def _once(self, endpoint: str, fn: Callable[[], Awaitable[T]], write: bool) -> T:
        waited = await self.limiter.acquire(endpoint)
        RATE_LIMIT_WAIT.labels(self.destination, self.credential_id).observe(waited)
        started = time.monotonic()
        self.count += 1
        try:
            result = await self._answer(endpoint, fn)
        except Exception as exc:  # classified below; unknown exceptions re-raised as they are
            error = exc if isinstance(exc, SinkError) else self._classify(exc)
            if error is None:
                raise
            status = str(error.status_code or type(error).__name__)
            PROVIDER_CALLS.labels(self.destination, endpoint, status).inc()
            PROVIDER_LATENCY.labels(self.destination, endpoint).observe(time.monotonic() - started)
            if isinstance(error, RateLimitedError):
                self.limiter.on_rate_limited(error.retry_after)
            if write and error.status_code is None and isinstance(error, RetriableError):
                # No answer to a write: it may have been committed before the drop.
                error = ProviderTimeoutError(error.message, provider_code=error.provider_code)
            raise error from exc
        finally:
            self.limiter.release()
        PROVIDER_CALLS.labels(self.destination, endpoint, "ok").inc()
        PROVIDER_LATENCY.labels(self.destination, endpoint).observe(time.monotonic() - started)
        return result

    async def _answer(self, endpoint: str, fn: Callable[[], Awaitable[T]]) -> T:
        """The provider's answer within `timeout` (the call holds its limiter slot)."""
        try:
            async with asyncio.timeout(self.timeout) as scope:
                return await fn()
        except TimeoutError as exc:
            if not scope.expired():
                raise  # the client's own timeout: the destination classifies it
            raise ProviderTimeoutError(f"no answer within {self.timeout:g}s ({endpoint})") from exc

    def observe(self, headers: RateHeaders) -> None:
        """The provider's rate headers (remaining this minute / day) from a response: they
        steer the limiter before a 429 happens."""
        self.limiter.observe(headers)


class SinkDestination(ABC, Generic[ClientT]):
    family: ClassVar[str]  # "stripe": the dispatch topic is dispatch.<family>
    external_system: ClassVar[ExternalSystem]  # whose external mappings a request carries
    # The external table an account maps to for the customer ("Customer", "Contact", ...):
    # a mapping of the account to any other table is never taken for the customer.
    customer_table: ClassVar[str]
    credential_type: ClassVar[type[Any]]

    @abstractmethod
    def rate_spec(self, destination: DestinationName, credential: Credential) -> RateSpec: ...

    @abstractmethod
    def make_client(self, destination: DestinationName, credential: Credential) -> ClientT: ...

    def provider_limits(
        self, destination: DestinationName, credential: Credential
    ) -> ProviderLimits | None:
        """The provider's real limits (windows, concurrency, daily quota, scope); None keeps
        the per-second `rate_spec` limiter."""
        return None

    def schedule_interval(self, config: IntegrationConfig) -> float | None:
        """Seconds between scheduled deliveries when `config` collects its bills (e.g. a
        SCHEDULE trigger: hourly, 3600); None delivers each bill as it comes."""
        return None

    def tenant_of(self, config: IntegrationConfig, credential: Credential) -> str | None:
        """The provider-side tenant a delivery writes to (Xero organisation), if any."""
        return None

    async def close_client(self, client: ClientT) -> None:
        """Release the client's connections (optional)."""

    async def abandon(
        self, request: DeliveryRequest, client: ClientT, calls: ProviderCalls
    ) -> str | None:
        """The run of a bill delivered for the first time ends in error after a write may
        have happened: remove what it left half-written at the provider (an incomplete
        draft), so the provider never holds part of a bill. Return what was done, for the
        operator (None: nothing was there). Optional; the map keeps its PENDING marker, so
        a resend looks up again."""
        return None

    @abstractmethod
    def classify(self, exc: BaseException) -> SinkError | None:
        """Map the client's exception to the taxonomy (via shared.sinks.classify);
        None for anything that is not a provider answer (a bug: it propagates)."""

    @abstractmethod
    async def deliver(
        self, request: DeliveryRequest, client: ClientT, calls: ProviderCalls
    ) -> DeliveryResult:
        """Create or update the destination invoice for the prepared bill.

        Raise a SinkError subclass for failures; validate against the provider's rules
        before the first call (FatalBillError), so nothing half-written is left behind."""
