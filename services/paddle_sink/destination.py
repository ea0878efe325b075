"""`PaddleDestination`: PADDLE and PADDLE_SANDBOX bills into Paddle Billing transactions.

Recovery story (Paddle has no idempotency key and no filter on custom_data):

- A new bill is one `POST /transactions` (one call), left as a draft (`ready` once it has
  everything manual collection needs; never `billed` by billsync).
- The invoice map is the de-duplication: with a recorded transaction, the sink reads it
  (`GET /transactions/{id}`); the same bill version again writes nothing, a regenerated
  bill `PATCH`es it while it is `draft` or `ready`, and a `billed` (paid, completed,
  canceled) transaction is never touched: INVOICE_ALREADY_PAID with what to do.
- Nothing is ever half-written (one request carries the whole transaction), so `abandon`
  has nothing to remove: a run that ends in error after a committed write leaves the
  complete draft, and the map's PENDING marker makes a resend find it.
- After a 5xx, a timeout or a dropped connection (`request.recovering`) the write may have
  been committed. Before writing again the sink lists the customer's transactions created
  in the week before the envelope was routed, newest first, and matches
  `custom_data` (bill id and configuration id); found, it continues from that transaction.

Paddle allows 240 requests a minute per client IP, for every credential together, and a
429 blocks the IP for 60 s: `provider_limits` is Paddle's window with `Scope.PROCESS`, so
the framework gives every request of this process (every credential, every
configuration) one `QuotaLimiter`, run just under the limit: the sink never reaches it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import aiohttp

from shared.contracts import (
    Destination,
    ExternalSystem,
    PaddleIntegrationConfig,
)
from shared.credentials import Credential
from shared.credentials.models import PaddleCredential
from shared.logging import get_logger
from shared.sinks.classify import classify_response
from shared.sinks.destination import (
    DeliveryRequest,
    DeliveryResult,
    ProviderCalls,
    SinkDestination,
)
from shared.sinks.errors import AuthenticationError, FatalBillError, SinkError
from shared.sinks.invoice_map import InvoiceState
from shared.sinks.limits import ProviderLimits, Scope, Window
from shared.sinks.ratelimit import RateSpec
from shared.sinks.results import done, locked

from .client import PaddleApi, PaddleApiError, TransactionView, api_base_for
from .keys import environment_problem
from .mapping import (
    BILL_ID,
    BILL_VERSION,
    CONFIG_ID,
    PaddleTransactionPlan,
    plan_transaction,
    product_ids,
    resolve_parties,
)

log = get_logger("sink")

PER_MINUTE = 240  # per client IP, every credential together
# How far before the envelope was routed an earlier attempt's transaction may have been
# created (an earlier envelope of the bill left the map PENDING, then a crash; clocks).
LOOKUP_MARGIN = timedelta(days=7)
LOOKUP_PAGES = 20  # at most 600 of the customer's transactions, newest first
STATES = {
    "draft": InvoiceState.DRAFT,
    "ready": InvoiceState.DRAFT,
    "billed": InvoiceState.FINALIZED,
    "past_due": InvoiceState.FINALIZED,
    "paid": InvoiceState.PAID,
    "completed": InvoiceState.PAID,
    "canceled": InvoiceState.VOID,
}


def paddle_limits(per_minute: int = PER_MINUTE, window_seconds: float = 60.0) -> ProviderLimits:
    return ProviderLimits(windows=(Window(per_minute, window_seconds),), scope=Scope.PROCESS)


class PaddleDestination(SinkDestination[PaddleApi]):
    family = "paddle"
    external_system = ExternalSystem.PADDLE
    customer_table = "Customer"  # the account's Address and Business mappings are not it
    credential_type = PaddleCredential

    def __init__(
        self,
        api_base: str | None = None,
        *,
        timeout: float = 30.0,
        limits: ProviderLimits | None = None,
    ) -> None:
        self.api_base = api_base  # None: per destination (live, sandbox), see client.py
        self.timeout = timeout
        self.limits = limits or paddle_limits()

    def rate_spec(self, destination: Destination, credential: Credential) -> RateSpec:
        # Not used: provider_limits replaces the per-second limiter.
        return RateSpec(self.limits.windows[0].limit / self.limits.windows[0].seconds)

    def provider_limits(
        self, destination: Destination, credential: Credential
    ) -> ProviderLimits | None:
        """One budget for the whole process: Paddle counts per client IP."""
        return self.limits

    def make_client(self, destination: Destination, credential: Credential) -> PaddleApi:
        if not isinstance(credential, PaddleCredential):
            raise AuthenticationError(f"credential {credential.id} is not a Paddle credential")
        api_key = credential.api_key.get_secret_value()
        problem = environment_problem(api_key, destination)
        if problem:
            # A sandbox bill must never reach live Paddle, nor a live bill the sandbox.
            raise AuthenticationError(f"credential {credential.id}: {problem}")
        return PaddleApi(
            api_key,
            self.api_base or api_base_for(destination),
            destination,
            timeout=self.timeout,
        )

    async def close_client(self, client: PaddleApi) -> None:
        await client.close()

    def classify(self, exc: BaseException) -> SinkError | None:
        if isinstance(exc, PaddleApiError):
            request = f" [request {exc.request_id}]" if exc.request_id else ""
            message = f"Paddle {exc.status} {exc.code}: {exc.text}{request}"
            return classify_response(
                exc.status, message, provider_code=exc.code, headers=exc.headers
            )
        if isinstance(exc, (TimeoutError, aiohttp.ClientError)):
            return classify_response(None, f"Paddle unreachable: {type(exc).__name__}: {exc}")
        return None

    # ---- delivery ------------------------------------------------------------------------

    def plan(self, request: DeliveryRequest) -> PaddleTransactionPlan:
        """Everything before the first call: parties, products, the transaction."""
        config = request.config
        if not isinstance(config, PaddleIntegrationConfig):
            raise FatalBillError(f"configuration {config.id} is not a Paddle configuration")
        bill = request.envelope.bill
        rows = request.mappings.rows  # the account's and its lines' products' Paddle mappings
        parties = resolve_parties(bill.account_id, config, rows)
        return plan_transaction(bill, config, parties, product_ids(bill, config, rows))

    async def deliver(
        self, request: DeliveryRequest, client: PaddleApi, calls: ProviderCalls
    ) -> DeliveryResult:
        plan = self.plan(request)
        bill = request.envelope.bill
        found: TransactionView | None = None
        if request.existing is not None and request.existing.external_id:
            txn_id = request.existing.external_id
            found = await calls.read_or_none(
                "GET /transactions/{id}", lambda: client.get_transaction(txn_id)
            )
        if found is None and request.recovering:
            found = await self._look_up(request, plan, client, calls)
            log.info(
                "paddle_recovery_lookup",
                found=found.id if found else None,
                status=found.status if found else None,
            )
        if found is None:
            body = plan.body()
            created = await calls.call(
                "POST /transactions", lambda: client.create_transaction(body), write=True
            )
            return self._done(client, created)
        if not found.editable:
            return self._locked(client, found, bill.version)
        if found.custom_data.get(BILL_VERSION) == str(bill.version):
            return self._done(client, found)  # this version is already there
        body = plan.body()
        txn_id = found.id
        updated = await calls.call(
            "PATCH /transactions/{id}",
            lambda: client.update_transaction(txn_id, body),
            write=True,
        )
        return self._done(client, updated)

    async def _look_up(
        self,
        request: DeliveryRequest,
        plan: PaddleTransactionPlan,
        client: PaddleApi,
        calls: ProviderCalls,
    ) -> TransactionView | None:
        """The transaction an earlier attempt may have created: the customer's, created
        since the envelope was routed, with this bill and configuration in custom_data."""
        bill, config = request.envelope.bill, request.config
        routed = datetime.fromisoformat(request.envelope.routed_at)
        if routed.tzinfo is None:
            routed = routed.replace(tzinfo=UTC)
        since = routed.astimezone(UTC) - LOOKUP_MARGIN
        created_from = since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        customer = plan.parties.customer_id
        after: str | None = None
        for _ in range(LOOKUP_PAGES):
            page = await calls.call(
                "GET /transactions",
                partial(client.list_transactions, customer, created_from, after),
            )
            for txn in page.items:  # newest first: the latest write wins
                data = txn.custom_data
                if data.get(BILL_ID) == bill.id and data.get(CONFIG_ID) == config.id:
                    return txn
            if page.after is None:
                return None
            after = page.after
        return None

    def _done(self, client: PaddleApi, txn: TransactionView) -> DeliveryResult:
        state = STATES.get(txn.status, InvoiceState.FINALIZED)
        return done(txn.id, client.dashboard_url(txn.id), state)

    def _locked(self, client: PaddleApi, txn: TransactionView, version: int) -> DeliveryResult:
        then = (
            "resend the bill to create a new transaction"
            if txn.status == "canceled"
            else "issue a Paddle adjustment (credit) for the difference, or cancel it and resend"
        )
        return locked(
            txn.id,
            client.dashboard_url(txn.id),
            STATES.get(txn.status, InvoiceState.FINALIZED),
            provider="Paddle",
            provider_status=txn.status,
            bill_version=version,
            then=then,
        )
