"""What one delivery carries through its Stripe calls: the plan, the client, the keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from shared.contracts import RunStatus, Trigger
from shared.sinks import results
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.invoice_map import InvoiceState

from .client import InvoiceView, StripeApi
from .keys import idempotency_key
from .mapping import StripeInvoicePlan

T = TypeVar("T")
STATES = {
    "draft": InvoiceState.DRAFT,
    "open": InvoiceState.FINALIZED,
    "uncollectible": InvoiceState.FINALIZED,
    "paid": InvoiceState.PAID,
    "void": InvoiceState.VOID,
}


@dataclass
class Flow:
    """One attempt of one delivery.

    Idempotency keys: a first attempt uses the deterministic keys (a retry inside Stripe's
    memory of them gets Stripe's saved answer, and two sinks racing on one record write
    once). Stripe also saves a 5xx and replays it for the key's life, so an attempt after
    a 5xx or no answer (`request.recovering`) first looks up what Stripe holds, continues
    from there, and writes with a fresh key generation: a saved error can never block the
    run, and the look-up beforehand is what makes a new key safe."""

    request: DeliveryRequest
    plan: StripeInvoicePlan
    api: StripeApi
    calls: ProviderCalls
    generation: str | None = None  # set on recovering attempts

    def key(self, step: str, *parts: str) -> str:
        bill = self.request.envelope.bill
        fresh = (f"gen:{self.generation}",) if self.generation else ()
        return idempotency_key(self.request.config.id, bill.id, bill.version, step, *parts, *fresh)

    async def read(self, endpoint: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await self.calls.call(endpoint, fn)

    async def read_or_none(self, endpoint: str, fn: Callable[[], Awaitable[T]]) -> T | None:
        """A read where 404 (deleted, or never existed) is an answer, not a failure."""
        return await self.calls.read_or_none(endpoint, fn)

    async def delete(self, endpoint: str, fn: Callable[[], Awaitable[None]]) -> None:
        """DELETE is idempotent by nature (Stripe takes no key): 404 means already gone."""
        await self.calls.delete(endpoint, fn)

    async def write(self, endpoint: str, key: str, fn: Callable[[str], Awaitable[T]]) -> T:
        return await self.calls.call(endpoint, partial(fn, key), write=True)

    # ---- results -------------------------------------------------------------------

    def invoice_url(self, invoice: InvoiceView) -> str:
        return invoice.hosted_invoice_url or self.api.dashboard_url("invoices", invoice.id)

    def done(
        self,
        invoice: InvoiceView,
        status: RunStatus = RunStatus.COMPLETE,
        message: str | None = None,
    ) -> DeliveryResult:
        state = STATES.get(invoice.status, InvoiceState.FINALIZED)
        return results.done(invoice.id, self.invoice_url(invoice), state, status, message)

    @property
    def operator_resend(self) -> bool:
        envelope = self.request.envelope
        return envelope.resend_of_run_id is not None or envelope.trigger is Trigger.REPLAY

    def locked(self, invoice: InvoiceView) -> DeliveryResult:
        then = (
            "resend the bill to issue a new invoice"
            if invoice.status == "void"
            else "void it in Stripe (or issue a credit note), then resend the bill"
        )
        return results.locked(
            invoice.id,
            self.invoice_url(invoice),
            STATES.get(invoice.status, InvoiceState.FINALIZED),
            provider="Stripe",
            provider_status=invoice.status,
            bill_version=self.request.envelope.bill.version,
            then=then,
        )

    def skipped(self, message: str | None = None) -> DeliveryResult:
        return results.skipped(self.plan.skip_reason or "skipped", message)
