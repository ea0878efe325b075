"""Delivering a batch of bills to one Xero organisation: plan, look up, write, answer each.

Recovery story (why nothing is doubled or silently changed):
- The invoice number is the bill id and Xero keeps it unique, and every write is a POST
  (create or update, matched by number): writing the same bill again updates its one
  document. Every write carries an `Idempotency-Key` derived from its body, so a repeat of
  the same call is replayed by Xero, not applied again.
- After a timeout, a 5xx or a dropped connection (`request.recovering`), the documents are
  looked up by number first (`GET /Invoices?InvoiceNumbers=...`, one call for up to 100):
  a document that already holds this bill version in its Reference and the wanted status
  is COMPLETE without another write; an AUTHORISED, PAID or VOIDED one is COMPLETE when it
  holds this version (our own write landed before the drop), otherwise it is never changed
  (INVOICE_ALREADY_PAID, as for Stripe).
- Without a look-up, Xero itself refuses to edit an approved document ("cannot be edited"):
  that bill's answer is INVOICE_ALREADY_PAID unless the document holds this very version.
- A bill whose total changes sign between versions changes document kind: the DRAFT of
  the other kind is deleted first (an approved one is left alone and the bill ends
  INVOICE_ALREADY_PAID: an accountant must credit or void it in Xero).
- Each document's own validation errors fail only its bill (FatalBillError, an
  `integration.validation.error`); a failure of the whole call is raised once and the
  framework applies it to every bill of the batch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.contracts import RunStatus
from shared.sinks.batching import Outcome
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.errors import FatalBillError, InvoiceLockedError, SinkError
from shared.sinks.invoice_map import InvoiceState
from shared.sinks.metrics import report_quota

from .client import LOOKUP_PAGE, BatchAnswer, Documents, ElementResult, XeroApi, XeroDocument
from .mapping import DocumentKind, XeroDocumentPlan, version_in

T = TypeVar("T")
EDITABLE = frozenset({"DRAFT", "SUBMITTED"})
STATES = {
    "DRAFT": InvoiceState.DRAFT,
    "SUBMITTED": InvoiceState.DRAFT,
    "AUTHORISED": InvoiceState.FINALIZED,
    "PAID": InvoiceState.PAID,
    "VOIDED": InvoiceState.VOID,
    "DELETED": InvoiceState.DELETED,
}
LOCKED_TEXT = "cannot be edited"
APP_URL = "https://go.xero.com"


def document_url(kind: DocumentKind, document_id: str) -> str:
    if kind is DocumentKind.INVOICE:
        return f"{APP_URL}/AccountsReceivable/View.aspx?InvoiceID={document_id}"
    return f"{APP_URL}/AccountsReceivable/ViewCreditNote.aspx?creditNoteID={document_id}"


def kind_of(url: str | None) -> DocumentKind | None:
    """Which kind of document the invoice map's record points at (by its URL)."""
    if not url:
        return None
    return DocumentKind.CREDIT_NOTE if "ViewCreditNote" in url else DocumentKind.INVOICE


@dataclass
class Item:
    index: int
    request: DeliveryRequest
    plan: XeroDocumentPlan
    found: XeroDocument | None = None


def result_for(plan: XeroDocumentPlan, document: XeroDocument) -> DeliveryResult:
    return DeliveryResult(
        RunStatus.COMPLETE,
        STATES.get(document.status, InvoiceState.DRAFT),
        document.document_id,
        document_url(plan.kind, document.document_id),
    )


def locked(plan: XeroDocumentPlan, document: XeroDocument | None, detail: str = "") -> Outcome:
    """An approved document: ours for this version is done; otherwise never changed."""
    if document is not None and version_in(document.reference) == plan.version:
        return result_for(plan, document)
    what = f"{document.status} " if document else ""
    name = "invoice" if plan.kind is DocumentKind.INVOICE else "credit note"
    return InvoiceLockedError(
        f"Xero {name} {plan.number} is {what or 'approved '}and cannot be changed"
        f"{': ' + detail if detail else ''}; billsync does not change approved documents. "
        f"Void or credit it in Xero, then resend bill {plan.bill_id}"
    )


class BatchDelivery:
    """One batch (one credential, one organisation, equal settings)."""

    def __init__(
        self,
        client: XeroApi,
        calls: ProviderCalls,
        outcomes: list[Outcome | None],
        classify: Callable[[BaseException], SinkError | None],
    ) -> None:
        self.client = client
        self.calls = calls
        self.outcomes = outcomes
        self.classify = classify

    async def run(self, items: Sequence[Item]) -> None:
        await self._look_up([i for i in items if i.request.recovering])
        pending = [i for i in items if self.outcomes[i.index] is None and self._settled(i)]
        pending = await self._drop_other_kind(pending)
        for kind in DocumentKind:
            group = [i for i in pending if i.plan.kind is kind]
            if group:
                await self._write(kind, group)

    async def _call(
        self, endpoint: str, fn: Callable[[], Awaitable[T]], *, write: bool = False
    ) -> T:
        """Through the framework's call wrapper; the answer's rate headers (a 429's too)
        then steer this organisation's limiter."""
        try:
            await self.client.prepare()
        except Exception as exc:  # token or connections: classified like any Xero answer
            error = exc if isinstance(exc, SinkError) else self.classify(exc)
            if error is None:
                raise
            raise error from exc
        try:
            return await self.calls.call(endpoint, fn, write=write)
        finally:
            headers = self.client.last_headers
            if headers is not None:
                self.calls.observe(headers)
                credential = self.client.credential.id
                if headers.remaining_in_window is not None:
                    report_quota("xero", credential, "minute", headers.remaining_in_window, 60)
                if headers.remaining_today is not None:
                    report_quota("xero", credential, "day", headers.remaining_today, 5000)

    def _settled(self, item: Item) -> bool:
        """False when the look-up already answers this bill (nothing to write)."""
        doc = item.found
        if doc is None:
            return True
        if doc.status not in EDITABLE:
            self.outcomes[item.index] = locked(item.plan, doc)
            return False
        if version_in(doc.reference) == item.plan.version and doc.status == item.plan.status:
            self.outcomes[item.index] = result_for(item.plan, doc)
            return False
        return True

    async def _look_up(self, items: Sequence[Item]) -> None:
        for kind in DocumentKind:
            group = [i for i in items if i.plan.kind is kind]
            for start in range(0, len(group), LOOKUP_PAGE):
                chunk = group[start : start + LOOKUP_PAGE]
                numbers = [i.plan.number for i in chunk]
                docs = await self._call(
                    f"GET /{kind.value}", _bind_lookup(self.client, kind.value, numbers)
                )
                by_number = {d.number: d for d in docs.documents}
                for item in chunk:
                    item.found = by_number.get(item.plan.number)

    async def _drop_other_kind(self, items: Sequence[Item]) -> list[Item]:
        """Bills whose previous version was the other kind of document: delete that draft."""
        flips = [
            i
            for i in items
            if i.request.existing is not None
            and i.request.existing.external_id
            and kind_of(i.request.existing.url) not in (None, i.plan.kind)
        ]
        keep = [i for i in items if i not in flips]
        for kind in DocumentKind:
            group = [i for i in flips if i.plan.kind is not kind]
            if not group:
                continue
            elements = [
                {
                    kind.id_field: i.request.existing.external_id if i.request.existing else "",
                    "Status": "DELETED",
                }
                for i in group
            ]
            answer = await self._call(
                f"POST /{kind.value}", _bind_write(self.client, kind.value, elements), write=True
            )
            for item, result in zip(group, answer.results, strict=True):
                if result.refused:
                    self.outcomes[item.index] = locked(item.plan, None, "; ".join(result.errors))
                else:
                    keep.append(item)
        return sorted(keep, key=lambda i: i.index)

    async def _write(self, kind: DocumentKind, items: Sequence[Item]) -> None:
        elements = []
        for item in items:
            element = item.plan.element()
            if item.found is not None:
                element[kind.id_field] = item.found.document_id
            elements.append(element)
        answer = await self._call(
            f"POST /{kind.value}", _bind_write(self.client, kind.value, elements), write=True
        )
        relooks: list[Item] = []
        for item, result in zip(items, answer.results, strict=True):
            outcome = self._answer(item, result)
            if outcome is None:
                relooks.append(item)
            else:
                self.outcomes[item.index] = outcome
        if relooks:  # refused as approved: is it our own write of this version?
            await self._look_up(relooks)
            for item in relooks:
                self.outcomes[item.index] = locked(item.plan, item.found)

    def _answer(self, item: Item, result: ElementResult) -> Outcome | None:
        if result.document is not None:
            return result_for(item.plan, result.document)
        text = "; ".join(result.errors) or "refused without a reason"
        if LOCKED_TEXT in text:
            return None
        return FatalBillError(
            f"Xero refused {item.plan.kind.type} {item.plan.number} for bill "
            f"{item.plan.bill_id} v{item.plan.version}: {text}"
        )


def _bind_lookup(
    client: XeroApi, collection: str, numbers: list[str]
) -> Callable[[], Awaitable[Documents]]:
    return lambda: client.by_numbers(collection, numbers)


def _bind_write(
    client: XeroApi, collection: str, elements: list[dict[str, Any]]
) -> Callable[[], Awaitable[BatchAnswer]]:
    return lambda: client.write(collection, elements)
