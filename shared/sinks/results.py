"""The results every destination returns, built one way (a destination's `deliver` ends
with one of these; the runner records it as the run's outcome and in the invoice map).

- `done`: the provider holds this bill version (COMPLETE), with the external id, a URL an
  operator can open, and the invoice's state at the provider;
- `locked`: the provider's invoice is finalized, paid or void, so this version was not
  applied (INVOICE_ALREADY_PAID), with what the operator can do about it;
- `skipped`: nothing to send (a zero bill, a filtered one), with the reason."""

from __future__ import annotations

from shared.contracts import RunStatus
from shared.sinks.destination import DeliveryResult
from shared.sinks.invoice_map import InvoiceState


def done(
    external_id: str,
    url: str,
    state: InvoiceState,
    status: RunStatus = RunStatus.COMPLETE,
    message: str | None = None,
    item_ids: list[str] | None = None,
) -> DeliveryResult:
    return DeliveryResult(status, state, external_id, url, list(item_ids or []), message)


def locked(
    external_id: str,
    url: str,
    state: InvoiceState,
    *,
    provider: str,
    provider_status: str,
    bill_version: int,
    then: str,
) -> DeliveryResult:
    """A finalized invoice is never silently changed: say so, and what to do."""
    return done(
        external_id,
        url,
        state,
        RunStatus.INVOICE_ALREADY_PAID,
        f"{provider} invoice {external_id} is {provider_status}; bill version {bill_version} "
        f"was not applied because billsync never changes a finalized invoice: {then}",
    )


def skipped(reason: str, message: str | None = None) -> DeliveryResult:
    return DeliveryResult(
        RunStatus.SKIPPED,
        InvoiceState.SKIPPED,
        message=f"{reason}{'; ' + message if message else ''}",
    )
