"""What one delivery carries through its Stripe calls: the plan, the client, the keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import stripe

from shared.contracts import RunStatus, Trigger
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.errors import FatalBillError, RetriableError
from shared.sinks.invoice_map import InvoiceState

from .client import InvoiceView, StripeApi
from .keys import idempotency_key, rotate
from .mapping import StripeInvoicePlan

T = TypeVar("T")
MAX_ROTATIONS = 3
STATES = {
    "draft": InvoiceState.DRAFT,
    "open": InvoiceState.FINALIZED,
    "uncollectible": InvoiceState.FINALIZED,
    "paid": InvoiceState.PAID,
    "void": InvoiceState.VOID,
}


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    return next((v for k, v in (headers or {}).items() if k.lower() == name.lower()), None)


def replayed_server_error(err: RetriableError) -> str | None:
    """The original request id when Stripe replayed a saved 5xx for our key, else None."""
    cause = err.__cause__
    if not isinstance(cause, stripe.StripeError) or (err.status_code or 0) < 500:
        return None
    if _header(cause.headers, "Idempotent-Replayed") != "true":
        return None
    return _header(cause.headers, "Original-Request") or cause.request_id or "replayed"


@dataclass
class Flow:
    request: DeliveryRequest
    plan: StripeInvoicePlan
    api: StripeApi
    calls: ProviderCalls
    # True once this delivery has read Stripe's state: from then on a replayed 5xx may move
    # to a rotated key without risking a duplicate.
    checked: bool = False

    def key(self, step: str, *parts: str) -> str:
        bill = self.request.envelope.bill
        return idempotency_key(self.request.config.id, bill.id, bill.version, step, *parts)

    async def read(self, endpoint: str, fn: Callable[[], Awaitable[T]]) -> T:
        result = await self.calls.call(endpoint, fn)
        self.checked = True
        return result

    async def read_or_none(self, endpoint: str, fn: Callable[[], Awaitable[T]]) -> T | None:
        """A read where 404 (deleted, or never existed) is an answer, not a failure."""
        try:
            return await self.read(endpoint, fn)
        except FatalBillError as err:
            if err.status_code == 404:
                self.checked = True
                return None
            raise

    async def delete(self, endpoint: str, fn: Callable[[], Awaitable[None]]) -> None:
        """DELETE is idempotent by nature (Stripe takes no key): 404 means already gone."""
        try:
            await self.calls.call(endpoint, fn)
        except FatalBillError as err:
            if err.status_code != 404:
                raise

    async def write(self, endpoint: str, key: str, fn: Callable[[str], Awaitable[T]]) -> T:
        for _ in range(MAX_ROTATIONS):
            try:
                return await self.calls.call(endpoint, partial(fn, key), write=True)
            except RetriableError as err:
                original = replayed_server_error(err)
                if original is None or not self.checked:
                    raise
                key = rotate(key, original)
        raise RetriableError(f"{endpoint}: Stripe keeps answering with saved server errors")

    # ---- results -------------------------------------------------------------------

    def invoice_url(self, invoice: InvoiceView) -> str:
        return invoice.hosted_invoice_url or self.api.dashboard_url("invoices", invoice.id)

    def done(
        self,
        invoice: InvoiceView,
        status: RunStatus = RunStatus.COMPLETE,
        message: str | None = None,
    ) -> DeliveryResult:
        return DeliveryResult(
            status,
            STATES.get(invoice.status, InvoiceState.FINALIZED),
            invoice.id,
            self.invoice_url(invoice),
            message=message,
        )

    @property
    def operator_resend(self) -> bool:
        envelope = self.request.envelope
        return envelope.resend_of_run_id is not None or envelope.trigger is Trigger.REPLAY

    def locked(self, invoice: InvoiceView) -> DeliveryResult:
        version = self.request.envelope.bill.version
        then = (
            "resend the bill to issue a new invoice"
            if invoice.status == "void"
            else "void it in Stripe (or issue a credit note), then resend the bill"
        )
        return self.done(
            invoice,
            RunStatus.INVOICE_ALREADY_PAID,
            f"Stripe invoice {invoice.id} is {invoice.status}; bill version {version} was not "
            f"applied because billsync never changes a finalized invoice: {then}",
        )

    def skipped(self, message: str | None = None) -> DeliveryResult:
        reason = self.plan.skip_reason or "skipped"
        return DeliveryResult(
            RunStatus.SKIPPED,
            InvoiceState.SKIPPED,
            message=f"{reason}{'; ' + message if message else ''}",
        )
