"""createStripeInvoice=true: one standalone Stripe invoice per bill per configuration.

New bill: create (pending items excluded) -> add_lines (all lines, one call) -> finalize
unless left as draft. Known or recovered draft: update -> replace the lines (one
remove_lines, one add_lines) unless the lines digest says they are already in place ->
finalize. Not a draft any more: never modified."""

from __future__ import annotations

from functools import partial

from shared.sinks.destination import DeliveryResult
from shared.sinks.errors import FatalBillError
from shared.sinks.invoice_map import InvoiceState

from . import params
from .client import InvoiceView
from .flow import Flow
from .invoice_fields import BILL_ID, BILL_VERSION, CONFIG_ID, FIELDS_DIGEST, LINES_DIGEST
from .items_flow import clear_pending_items
from .keys import ids_hash


async def deliver_invoice(flow: Flow) -> DeliveryResult:
    existing, invoice, replaces = flow.request.existing, None, None
    if existing is not None and existing.state is InvoiceState.PENDING_ITEMS:
        # The configuration switched from pending items: never leave both behind.
        blocked = await clear_pending_items(flow)
        if blocked is not None:
            return blocked
    elif existing is not None and existing.external_id:
        invoice = await retrieve(flow, existing.external_id)
        replaces = None if invoice else existing.external_id
    pending = existing is not None and existing.state is InvoiceState.PENDING
    if invoice is None and (flow.request.recovering or pending):
        invoice = await find(flow)
    if invoice is not None and invoice.status == "void" and flow.operator_resend:
        # Re-issue only on an operator's explicit resend, never on a regeneration.
        replaces, invoice = invoice.id, None
    if invoice is None:
        if flow.plan.skip_reason:
            return flow.skipped()
        return await create(flow, replaces)
    if invoice.status != "draft":
        return already_done(flow, invoice)
    return await regenerate(flow, invoice)


async def retrieve(flow: Flow, invoice_id: str) -> InvoiceView | None:
    return await flow.read_or_none(
        "GET /v1/invoices/{id}", partial(flow.api.retrieve_invoice, invoice_id)
    )


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def find(flow: Flow) -> InvoiceView | None:
    """An invoice an earlier attempt may have created. The customer's newest invoices come
    first: the list is consistent, while search lags writes by up to a minute, which is
    exactly the window recovery looks into. Search by metadata covers customers with more
    invoices than one page."""
    bill_id, config_id = flow.request.envelope.bill.id, flow.request.config.id
    listed, more = await flow.read(
        "GET /v1/invoices", partial(flow.api.list_invoices, flow.plan.customer_id)
    )
    ours = [i for i in listed if _ours(i, bill_id, config_id)]
    if not ours and more:
        query = (
            f"metadata['{BILL_ID}']:{quote(bill_id)} AND metadata['{CONFIG_ID}']:{quote(config_id)}"
        )
        found = await flow.read("GET /v1/invoices/search", partial(flow.api.search_invoices, query))
        ours = [i for i in found if _ours(i, bill_id, config_id)]
    # An editable draft first, then the newest live one, voided ones last (lists are newest
    # first; sorted() is stable).
    ours.sort(key=lambda i: 0 if i.status == "draft" else 2 if i.status == "void" else 1)
    return ours[0] if ours else None


def _ours(invoice: InvoiceView, bill_id: str, config_id: str) -> bool:
    return invoice.metadata.get(BILL_ID) == bill_id and invoice.metadata.get(CONFIG_ID) == config_id


async def create(flow: Flow, replaces: str | None) -> DeliveryResult:
    # A draft deleted in Stripe must not be resurrected by the key that created it.
    key = flow.key("create", *([f"replaces:{replaces}"] if replaces else []))
    invoice = await flow.write(
        "POST /v1/invoices", key, partial(flow.api.create_invoice, params.create_invoice(flow.plan))
    )
    invoice = await put_lines(flow, invoice, removed=[])
    return await finish(flow, invoice)


async def regenerate(flow: Flow, invoice: InvoiceView) -> DeliveryResult:
    plan = flow.plan
    if invoice.customer != plan.customer_id or invoice.currency != plan.currency:
        raise FatalBillError(
            f"Stripe draft {invoice.id} is for {invoice.customer} in {invoice.currency}; the "
            f"bill now goes to {plan.customer_id} in {plan.currency}. Delete the draft in "
            "Stripe, then resend"
        )
    if plan.skip_reason:
        await flow.delete("DELETE /v1/invoices/{id}", partial(flow.api.delete_invoice, invoice.id))
        return flow.skipped(f"deleted the earlier draft {invoice.id}")
    # An empty plan records its digest with the update, so it cannot vouch for the lines.
    in_place = bool(plan.lines) and invoice.metadata.get(LINES_DIGEST) == plan.lines_digest
    # Line ids from the retrieved invoice: a write's answer may be a replay of an older one.
    removed = [] if in_place else await line_ids(flow, invoice)
    if invoice.metadata.get(FIELDS_DIGEST) != plan.fields_digest:
        update = params.update_invoice(plan)
        invoice = await flow.write(
            "POST /v1/invoices/{id}",
            flow.key("update", invoice.id, plan.fields_digest),
            partial(flow.api.update_invoice, invoice.id, update),
        )
    if not in_place:
        invoice = await put_lines(flow, invoice, removed)
    return await finish(flow, invoice)


async def line_ids(flow: Flow, invoice: InvoiceView) -> list[str]:
    if invoice.lines_complete:
        return list(invoice.line_ids)  # Stripe embedded them all: no call
    ids: list[str] = []
    while True:
        after = ids[-1] if ids else None
        page = await flow.read(
            "GET /v1/invoices/{id}/lines", partial(flow.api.line_ids_page, invoice.id, after)
        )
        ids.extend(page.ids)
        if not page.has_more or not page.ids:
            return ids


async def put_lines(flow: Flow, invoice: InvoiceView, removed: list[str]) -> InvoiceView:
    """Replace every line: one remove_lines, one add_lines that also records the digest."""
    plan = flow.plan
    if removed:
        invoice = await flow.write(
            "POST /v1/invoices/{id}/remove_lines",
            flow.key("remove_lines", invoice.id, ids_hash(removed)),
            partial(flow.api.remove_lines, invoice.id, removed),
        )
    if not plan.lines:
        return invoice  # the empty digest went with create/update
    lines = [params.add_line(line, plan.currency) for line in plan.lines]
    key = flow.key("add_lines", invoice.id, plan.lines_digest, ids_hash(removed))
    return await flow.write(
        "POST /v1/invoices/{id}/add_lines",
        key,
        partial(flow.api.add_lines, invoice.id, lines, {LINES_DIGEST: plan.lines_digest}),
    )


async def finish(flow: Flow, invoice: InvoiceView) -> DeliveryResult:
    if flow.plan.finalize and invoice.status == "draft":
        invoice = await flow.write(
            "POST /v1/invoices/{id}/finalize",
            flow.key("finalize", invoice.id),
            partial(flow.api.finalize, invoice.id),
        )
    return flow.done(invoice)


def already_done(flow: Flow, invoice: InvoiceView) -> DeliveryResult:
    """A finalized invoice is final: success if it already holds this very bill version
    (and still bills it: a voided one does not)."""
    same = (
        invoice.status != "void"
        and invoice.metadata.get(BILL_VERSION) == flow.plan.bill_version
        and invoice.metadata.get(LINES_DIGEST) == flow.plan.lines_digest
    )
    return flow.done(invoice) if same else flow.locked(invoice)
