"""`StripeApi`: a thin async wrapper over the official SDK's `StripeClient`.

One method per Stripe request (pages included), so the sink's ProviderCalls can rate-limit,
time and classify each one. The SDK never retries (`max_network_retries=0`): the sink
framework owns retries, and every write carries the caller's deterministic key.

Stripe's error texts can echo the key ("Invalid API Key provided: sk_test_****01zz"): every
error leaves this module scrubbed (`scrub_stripe_error`), and so do the SDK's own log lines,
so no fragment of a key reaches a run, an event, the store or a log."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import stripe
from stripe.params import (
    InvoiceAddLinesParamsLine,
    InvoiceCreateParams,
    InvoiceItemCreateParams,
    InvoiceUpdateParams,
)

from shared.redact import scrub_secrets

API_BASE_ENV = "BILLSYNC_STRIPE_API_BASE"
DEFAULT_API_BASE = "https://api.stripe.com"
PAGE = 100


P = ParamSpec("P")
R = TypeVar("R")


def scrub_stripe_error(exc: stripe.StripeError) -> stripe.StripeError:
    """Remove secrets from every text the error carries (message, body, error object), in
    place, so neither its message nor a traceback that holds it shows a fragment of a key."""
    exc._message = scrub_secrets(exc._message) if exc._message else exc._message
    if exc.http_body:
        exc.http_body = scrub_secrets(exc.http_body)
    body = exc.json_body
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        detail["message"] = scrub_secrets(detail["message"])
    if exc.error is not None and exc.error.message:
        exc.error.message = scrub_secrets(exc.error.message)
    exc.args = (exc._message,)
    return exc


def scrubbed(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except stripe.StripeError as exc:
            scrub_stripe_error(exc)
            raise

    return call


class _ScrubSdkLog(logging.Filter):
    """The SDK logs each error's message ("Stripe API error received ... error_message=")."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub_secrets(record.getMessage())
        record.args = None
        return True


_SDK_LOG_FILTER = _ScrubSdkLog()
logging.getLogger("stripe").addFilter(_SDK_LOG_FILTER)


def api_base_from_env() -> str:
    """The one setting that points billsync at another Stripe (a fake, a proxy)."""
    return os.environ.get(API_BASE_ENV, "").strip() or DEFAULT_API_BASE


@dataclass(frozen=True)
class InvoiceView:
    id: str
    status: str  # draft | open | paid | uncollectible | void
    customer: str
    currency: str
    total: int
    metadata: dict[str, str] = field(default_factory=dict)
    hosted_invoice_url: str | None = None
    # The lines Stripe embeds (first 10); complete when Stripe said there are no more.
    line_ids: tuple[str, ...] = ()
    lines_complete: bool = False


@dataclass(frozen=True)
class ItemView:
    id: str
    invoice: str | None  # None while pending
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    ids: list[str]
    has_more: bool


def _ref(value: object) -> str | None:
    """An expandable field: an id, or an expanded object with one."""
    if value is None or isinstance(value, str):
        return value
    ident = getattr(value, "id", None)
    return ident if isinstance(ident, str) else None


def _meta(metadata: stripe.StripeObject | None) -> dict[str, str]:
    raw = metadata.to_dict() if metadata is not None else {}
    return {str(k): str(v) for k, v in raw.items()}


def invoice_view(inv: stripe.Invoice) -> InvoiceView:
    lines: stripe.ListObject[stripe.InvoiceLineItem] | None = getattr(inv, "lines", None)
    return InvoiceView(
        id=inv.id or "",
        status=str(inv.status or "draft"),
        customer=_ref(inv.customer) or "",
        currency=inv.currency,
        total=int(inv.total or 0),
        metadata=_meta(inv.metadata),
        hosted_invoice_url=inv.hosted_invoice_url,
        line_ids=tuple(line.id for line in lines.data if line.id) if lines else (),
        lines_complete=lines is not None and not lines.has_more,
    )


def item_view(item: stripe.InvoiceItem) -> ItemView:
    return ItemView(id=item.id, invoice=_ref(item.invoice), metadata=_meta(item.metadata))


class StripeApi:
    def __init__(
        self,
        api_key: str,
        *,
        account: str | None = None,
        api_base: str = DEFAULT_API_BASE,
        timeout: float = 30.0,
        livemode: bool = False,
    ) -> None:
        self.account = account
        self.livemode = livemode
        self._http = stripe.AIOHTTPClient(timeout=timeout)
        self._client = stripe.StripeClient(
            api_key,
            stripe_account=account,
            base_addresses={"api": api_base.rstrip("/")},
            http_client=self._http,
            max_network_retries=0,
        )
        self._v1 = self._client.v1

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    def dashboard_url(self, kind: str, ident: str) -> str:
        account = f"{self.account}/" if self.account else ""
        mode = "" if self.livemode else "test/"
        return f"https://dashboard.stripe.com/{account}{mode}{kind}/{ident}"

    # ---- invoices ------------------------------------------------------------------

    @scrubbed
    async def create_invoice(self, params: InvoiceCreateParams, key: str) -> InvoiceView:
        inv = await self._v1.invoices.create_async(params, {"idempotency_key": key})
        return invoice_view(inv)

    @scrubbed
    async def retrieve_invoice(self, invoice_id: str) -> InvoiceView:
        return invoice_view(await self._v1.invoices.retrieve_async(invoice_id))

    @scrubbed
    async def update_invoice(
        self, invoice_id: str, params: InvoiceUpdateParams, key: str
    ) -> InvoiceView:
        inv = await self._v1.invoices.update_async(invoice_id, params, {"idempotency_key": key})
        return invoice_view(inv)

    @scrubbed
    async def delete_invoice(self, invoice_id: str) -> None:
        await self._v1.invoices.delete_async(invoice_id)

    @scrubbed
    async def add_lines(
        self,
        invoice_id: str,
        lines: list[InvoiceAddLinesParamsLine],
        invoice_metadata: dict[str, str],
        key: str,
    ) -> InvoiceView:
        inv = await self._v1.invoices.add_lines_async(
            invoice_id,
            {"lines": lines, "invoice_metadata": invoice_metadata},
            {"idempotency_key": key},
        )
        return invoice_view(inv)

    @scrubbed
    async def remove_lines(self, invoice_id: str, line_ids: list[str], key: str) -> InvoiceView:
        lines: list[stripe.params.InvoiceRemoveLinesParamsLine] = [
            {"id": ident, "behavior": "delete"} for ident in line_ids
        ]
        inv = await self._v1.invoices.remove_lines_async(
            invoice_id, {"lines": lines}, {"idempotency_key": key}
        )
        return invoice_view(inv)

    @scrubbed
    async def finalize(self, invoice_id: str, key: str) -> InvoiceView:
        inv = await self._v1.invoices.finalize_invoice_async(
            invoice_id, None, {"idempotency_key": key}
        )
        return invoice_view(inv)

    @scrubbed
    async def line_ids_page(self, invoice_id: str, after: str | None) -> Page:
        params: stripe.params.InvoiceLineItemListParams = {"limit": PAGE}
        if after:
            params["starting_after"] = after
        page = await self._v1.invoices.line_items.list_async(invoice_id, params)
        return Page([line.id for line in page.data if line.id], bool(page.has_more))

    @scrubbed
    async def search_invoices(self, query: str) -> list[InvoiceView]:
        found = await self._v1.invoices.search_async({"query": query, "limit": PAGE})
        return [invoice_view(inv) for inv in found.data]

    @scrubbed
    async def list_invoices(self, customer: str) -> tuple[list[InvoiceView], bool]:
        """The customer's newest invoices (strongly consistent, unlike search); has_more."""
        listed = await self._v1.invoices.list_async({"customer": customer, "limit": PAGE})
        return [invoice_view(inv) for inv in listed.data], bool(listed.has_more)

    # ---- invoice items (pending) ---------------------------------------------------

    @scrubbed
    async def create_item(self, params: InvoiceItemCreateParams, key: str) -> ItemView:
        item = await self._v1.invoice_items.create_async(params, {"idempotency_key": key})
        return item_view(item)

    @scrubbed
    async def retrieve_item(self, item_id: str) -> ItemView:
        return item_view(await self._v1.invoice_items.retrieve_async(item_id))

    @scrubbed
    async def delete_item(self, item_id: str) -> None:
        await self._v1.invoice_items.delete_async(item_id)

    @scrubbed
    async def pending_items_page(
        self, customer: str, after: str | None
    ) -> tuple[list[ItemView], bool]:
        params: stripe.params.InvoiceItemListParams = {
            "customer": customer,
            "pending": True,
            "limit": PAGE,
        }
        if after:
            params["starting_after"] = after
        page = await self._v1.invoice_items.list_async(params)
        return [item_view(i) for i in page.data], bool(page.has_more)
