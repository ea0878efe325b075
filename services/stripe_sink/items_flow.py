"""createStripeInvoice=false: pending invoice items the next subscription invoice picks up.

One POST /v1/invoiceitems per line: Stripe has no bulk endpoint for pending items. Each
item carries the bill's ids and a digest of itself, so a regeneration keeps the items that
did not change, deletes the others while they are still pending, and creates the missing
ones; once Stripe has put any of them on an invoice, nothing is touched."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from shared.contracts import RunStatus
from shared.sinks.destination import DeliveryResult
from shared.sinks.invoice_map import InvoiceState

from . import params
from .client import ItemView
from .flow import Flow
from .invoice_fields import BILL_ID, CONFIG_ID, ITEM_DIGEST
from .keys import ids_hash

_INVOICE_STATES = frozenset(
    {InvoiceState.DRAFT, InvoiceState.FINALIZED, InvoiceState.PAID, InvoiceState.VOID}
)


async def deliver_items(flow: Flow) -> DeliveryResult:
    existing, plan = flow.request.existing, flow.plan
    if existing is not None and existing.state in _INVOICE_STATES and existing.external_id:
        # The configuration switched from standalone invoices: never leave both behind.
        blocked = await _drop_invoice(flow, existing.external_id)
        if blocked is not None:
            return blocked
    ours: list[ItemView] = []
    if existing is not None or flow.request.recovering:
        ours = await pending_ours(flow)
        blocked = await _invoiced(flow, ours)
        if blocked is not None:
            return blocked
    if plan.skip_reason:
        await _delete(flow, ours)
        return flow.skipped(f"deleted {len(ours)} pending items" if ours else None)
    wanted = {line.metadata[ITEM_DIGEST] for line in plan.lines}
    keep = {i.metadata[ITEM_DIGEST]: i for i in ours if i.metadata.get(ITEM_DIGEST) in wanted}
    kept = {i.id for i in keep.values()}
    dropped = [i for i in ours if i.id not in kept]
    await _delete(flow, dropped)
    # After deletions the key names them: a key Stripe still remembers from an earlier
    # creation of the same item (since deleted) must not hand that dead item back.
    after = (ids_hash([i.id for i in dropped]),) if dropped else ()
    ids: list[str] = []
    for line in plan.lines:
        item_digest = line.metadata[ITEM_DIGEST]
        item = keep.get(item_digest)
        if item is None:
            item = await flow.write(
                "POST /v1/invoiceitems",
                flow.key("item", item_digest, *after),
                partial(flow.api.create_item, params.invoice_item(line, plan)),
            )
        ids.append(item.id)
    return DeliveryResult(
        RunStatus.COMPLETE,
        InvoiceState.PENDING_ITEMS,
        ids[0] if ids else None,
        flow.api.dashboard_url("customers", plan.customer_id),
        ids,
        f"{len(ids)} pending invoice items for {plan.customer_id}; the next subscription "
        "invoice will include them",
    )


async def clear_pending_items(flow: Flow) -> DeliveryResult | None:
    """Delete this bill's still-pending items (switching to standalone invoices)."""
    ours = await pending_ours(flow)
    blocked = await _invoiced(flow, ours)
    if blocked is None:
        await _delete(flow, ours)
    return blocked


async def pending_ours(flow: Flow) -> list[ItemView]:
    bill_id, config_id = flow.request.envelope.bill.id, flow.request.config.id
    found: list[ItemView] = []
    after: str | None = None
    while True:
        page, more = await flow.read(
            "GET /v1/invoiceitems",
            partial(flow.api.pending_items_page, flow.plan.customer_id, after),
        )
        found.extend(
            i
            for i in page
            if i.metadata.get(BILL_ID) == bill_id and i.metadata.get(CONFIG_ID) == config_id
        )
        if not more or not page:
            return found
        after = page[-1].id


async def _invoiced(flow: Flow, pending: list[ItemView]) -> DeliveryResult | None:
    """Items the map knows that are no longer pending: deleted, or put on an invoice."""
    existing = flow.request.existing
    if existing is None or existing.state is not InvoiceState.PENDING_ITEMS:
        return None
    still = {i.id for i in pending}
    for item_id in existing.external_item_ids:
        if item_id in still:
            continue
        item = await flow.read_or_none(
            "GET /v1/invoiceitems/{id}", partial(flow.api.retrieve_item, item_id)
        )
        if item is None or item.invoice is None:
            continue
        invoice = await flow.read_or_none(
            "GET /v1/invoices/{id}", partial(flow.api.retrieve_invoice, item.invoice)
        )
        message = (
            f"pending item {item.id} of this bill is already on Stripe invoice "
            f"{item.invoice}; bill version {flow.plan.bill_version} was not applied"
        )
        if invoice is None:
            return DeliveryResult(
                RunStatus.INVOICE_ALREADY_PAID,
                InvoiceState.FINALIZED,
                item.invoice,
                flow.api.dashboard_url("invoices", item.invoice),
                list(existing.external_item_ids),
                message,
            )
        result = flow.done(invoice, RunStatus.INVOICE_ALREADY_PAID, message)
        return replace(result, external_item_ids=list(existing.external_item_ids))
    return None


async def _drop_invoice(flow: Flow, invoice_id: str) -> DeliveryResult | None:
    invoice = await flow.read_or_none(
        "GET /v1/invoices/{id}", partial(flow.api.retrieve_invoice, invoice_id)
    )
    if invoice is None or invoice.status == "void":
        return None  # nothing is billed by it any more
    if invoice.status != "draft":
        return flow.locked(invoice)
    await flow.delete("DELETE /v1/invoices/{id}", partial(flow.api.delete_invoice, invoice.id))
    return None


async def _delete(flow: Flow, items: list[ItemView]) -> None:
    for item in items:
        await flow.delete("DELETE /v1/invoiceitems/{id}", partial(flow.api.delete_item, item.id))
