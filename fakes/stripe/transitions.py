"""Invoice state transitions: finalize, pay, void, mark_uncollectible."""

from __future__ import annotations

from typing import Any

from .context import Ctx, Endpoint
from .errors import StripeError, not_editable
from .invoices import get
from .money import format_amount
from .objects import render_invoice
from .state import JSON
from .validation import EXPAND, Bool, Loose, Obj, Str

FINALIZE = Obj({"auto_advance": Bool(), "expand": EXPAND})
PAY = Obj(
    {
        "expand": EXPAND,
        "forgive": Bool(),
        "mandate": Loose(),
        "off_session": Bool(),
        "paid_out_of_band": Bool(),
        "payment_method": Str(),
        "source": Str(),
    }
)


def _finalize(ctx: Ctx, inv: JSON, auto_advance: bool | None) -> None:
    if inv["status"] != "draft":
        raise not_editable(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice."
        )
    limit = ctx.config.max_amount_due
    if inv["amount_due"] > limit:
        message = (
            f"Amount must be no more than {format_amount(limit, inv['currency'])} "
            f"(invoice amount due: {format_amount(inv['amount_due'], inv['currency'])})."
        )
        inv["last_finalization_error"] = {
            "code": "amount_too_large",
            "message": message,
            "type": "invalid_request_error",
        }
        raise StripeError(400, message, code="amount_too_large", param="amount_due")
    now = ctx.now
    if auto_advance is not None:
        inv["auto_advance"] = auto_advance
    customer = ctx.ns.customers.get(inv["customer"])
    sequence = ctx.ns.invoice_sequence.get(inv["customer"], 0) + 1
    ctx.ns.invoice_sequence[inv["customer"]] = sequence
    prefix = customer["invoice_prefix"] if customer else "FAKE"
    inv.update(
        status="open",
        number=f"{prefix}-{sequence:04d}",
        effective_at=now,
        ending_balance=0,
        last_finalization_error=None,
        hosted_invoice_url=f"https://invoice.stripe.com/i/fake/{inv['id']}",
        invoice_pdf=f"https://pay.stripe.com/invoice/fake/{inv['id']}/pdf",
    )
    inv["status_transitions"]["finalized_at"] = now
    if inv["collection_method"] == "charge_automatically" and inv["auto_advance"]:
        inv["next_payment_attempt"] = now + 3600
    ctx.emit("invoice.finalized", render_invoice(ctx.ns, inv))
    if inv["amount_due"] == 0:
        _mark_paid(ctx, inv)


def _mark_paid(ctx: Ctx, inv: JSON) -> None:
    inv.update(
        status="paid", amount_paid=inv["amount_due"], amount_remaining=0, next_payment_attempt=None
    )
    inv["status_transitions"]["paid_at"] = ctx.now
    ctx.emit("invoice.paid", render_invoice(ctx.ns, inv))
    ctx.emit("invoice.payment_succeeded", render_invoice(ctx.ns, inv))


def finalize(ctx: Ctx, p: dict[str, Any]) -> JSON:
    inv = get(ctx)
    _finalize(ctx, inv, p.get("auto_advance"))
    return render_invoice(ctx.ns, inv)


def pay(ctx: Ctx, p: dict[str, Any]) -> JSON:
    inv = get(ctx)
    if inv["status"] == "draft":
        _finalize(ctx, inv, None)
        if inv["status"] == "paid":
            return render_invoice(ctx.ns, inv)
    if inv["status"] not in ("open", "uncollectible"):
        raise StripeError(400, f"Invoice is already {inv['status']}.", param="invoice")
    flags = ctx.ns.customer_flags.get(inv["customer"], {})
    if flags.get("payment_fails") and not p.get("paid_out_of_band"):
        inv["attempt_count"] += 1
        inv["attempted"] = True
        ctx.emit("invoice.payment_failed", render_invoice(ctx.ns, inv))
        raise StripeError(
            402,
            "Your card was declined.",
            type="card_error",
            code="card_declined",
            extra={"decline_code": "generic_decline"},
        )
    inv["attempt_count"] += 0 if p.get("paid_out_of_band") else 1
    inv["attempted"] = True
    _mark_paid(ctx, inv)
    return render_invoice(ctx.ns, inv)


def void(ctx: Ctx, p: dict[str, Any]) -> JSON:
    inv = get(ctx)
    if inv["status"] not in ("open", "uncollectible"):
        raise StripeError(
            400,
            f"You can only void open or uncollectible invoices; invoice "
            f"{inv['id']} has a status of {inv['status']}.",
        )
    inv.update(status="void", next_payment_attempt=None, amount_remaining=0)
    inv["status_transitions"]["voided_at"] = ctx.now
    ctx.emit("invoice.voided", render_invoice(ctx.ns, inv))
    return render_invoice(ctx.ns, inv)


def mark_uncollectible(ctx: Ctx, p: dict[str, Any]) -> JSON:
    inv = get(ctx)
    if inv["status"] != "open":
        raise StripeError(
            400,
            f"You can only mark open invoices as uncollectible; invoice "
            f"{inv['id']} has a status of {inv['status']}.",
        )
    inv.update(status="uncollectible", next_payment_attempt=None)
    inv["status_transitions"]["marked_uncollectible_at"] = ctx.now
    ctx.emit("invoice.marked_uncollectible", render_invoice(ctx.ns, inv))
    return render_invoice(ctx.ns, inv)


ENDPOINTS = [
    Endpoint("POST", "/v1/invoices/{id}/finalize", FINALIZE, finalize),
    Endpoint("POST", "/v1/invoices/{id}/pay", PAY, pay),
    Endpoint("POST", "/v1/invoices/{id}/void", Obj({"expand": EXPAND}), void),
    Endpoint(
        "POST", "/v1/invoices/{id}/mark_uncollectible", Obj({"expand": EXPAND}), mark_uncollectible
    ),
]
