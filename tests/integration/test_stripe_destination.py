"""StripeDestination.deliver against a running fake Stripe (no Kafka): what reached Stripe."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import stripe
from pydantic import SecretStr, ValidationError

from fakes.stripe import FakeStripe
from services.stripe_sink.client import API_BASE_ENV, DEFAULT_API_BASE, StripeApi
from services.stripe_sink.destination import StripeDestination
from services.stripe_sink.keys import idempotency_key
from shared.contracts import (
    Account,
    Bill,
    Destination,
    DispatchEnvelope,
    LineItem,
    RunStatus,
)
from shared.credentials import StripeCredential
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.errors import (
    AuthenticationError,
    FatalBillError,
    ProviderTimeoutError,
    RateLimitedError,
    RetriableError,
)
from shared.sinks.invoice_map import InvoiceMapRecord, InvoiceState
from shared.sinks.ratelimit import AdaptiveRateLimiter, RateSpec
from shared.sinks.standard_tests import record_of
from tests.integration.test_stripe_standard import API_KEY, CUSTOMER, StripeHarness, fresh

TIMES = "\u00d7"
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe([API_KEY, "sk_live_456"], rate_limits={"enabled": False})
    await fake.start()
    yield fake
    await fake.stop()


class Env:
    """One fresh fake per test, a bill builder and a deliver() that keeps the map record."""

    def __init__(self, fake: FakeStripe, account: str | None = None) -> None:
        self.fake = fake
        self.h = StripeHarness(fake, account)
        self.account = account
        self.last_calls: ProviderCalls | None = None

    def envelope(self, bill: Bill, account: Account | None = None, **dest: Any) -> DispatchEnvelope:
        config = self.h.config(editable=dest.pop("leaveInvoicesAsDrafts", False), **dest)
        envelope = self.h.envelope(config, bill)
        return envelope.model_copy(update={"account": account}) if account else envelope

    async def deliver(
        self,
        envelope: DispatchEnvelope,
        existing: InvoiceMapRecord | None = None,
        *,
        recovering: bool = False,
        attempt: int = 1,
    ) -> DeliveryResult:
        dest = self.h.destination
        client = dest.make_client(envelope.integration_config.destination, self.h.credential)
        calls = ProviderCalls("stripe", AdaptiveRateLimiter(RateSpec(None)), dest.classify)
        self.last_calls = calls
        request = DeliveryRequest(
            envelope, envelope.integration_config, CUSTOMER, existing, recovering, attempt, "run-1"
        )
        try:
            return await dest.deliver(request, client, calls)
        finally:
            await dest.close_client(client)

    @property
    def calls(self) -> int:
        assert self.last_calls is not None
        return self.last_calls.count

    def endpoints(self) -> dict[str, int]:
        return {k: v["requests"] for k, v in self.fake.stats["endpoints"].items()}

    def invoices(self, bill_id: str = "bill-1") -> list[dict[str, Any]]:
        return self.h.raw_invoices(bill_id)

    def invoice(self, bill_id: str = "bill-1") -> dict[str, Any]:
        found = self.invoices(bill_id)
        assert len(found) == 1, found
        return found[0]

    def fault(self, **rule: Any) -> None:
        self.fake.configure(faults={"rules": [{"count": 1, **rule}]})

    def api(self) -> StripeApi:
        return self.h.api()


@pytest.fixture
def env(fake_stripe: FakeStripe) -> Env:
    return Env(fresh(fake_stripe))


def item(ident: str, subtotal: str = "10.00", quantity: str = "1", **fields: Any) -> LineItem:
    data: dict[str, Any] = {
        "id": ident,
        "lineItemType": "USAGE",
        "description": ident,
        "quantity": quantity,
        "subtotal": subtotal,
    }
    data.update(fields)
    return LineItem.model_validate(data)


def bill(
    *lines: LineItem,
    version: int = 1,
    currency: str = "USD",
    bill_id: str = "bill-1",
    **fields: Any,
) -> Bill:
    items = list(lines) or [item("li-1", "120.00", "3"), item("li-2", "30.50")]
    return Bill(
        id=bill_id,
        version=version,
        account_id="acc-1",
        currency=currency,
        line_items=items,
        **fields,
    )


def line_data(inv: dict[str, Any]) -> list[dict[str, Any]]:
    return list(inv["lines"]["data"])


# ---- a new bill -------------------------------------------------------------------------


async def test_new_bill_is_three_calls_and_excludes_other_pending_items(env: Env) -> None:
    api = env.api()
    try:  # a pending item of the customer's subscription must stay pending
        other = await api.create_item(
            {"customer": CUSTOMER, "currency": "usd", "amount": 700}, "other-item"
        )
    finally:
        await api.close()
    result = await env.deliver(env.envelope(bill()))
    assert env.calls == 3
    assert env.endpoints() == {
        "POST /v1/invoices": 1,
        "POST /v1/invoices/{id}/add_lines": 1,
        "POST /v1/invoices/{id}/finalize": 1,
        "POST /v1/invoiceitems": 1,
    }
    inv = env.invoice()
    assert inv["status"] == "open" and inv["auto_advance"] is True
    assert inv["collection_method"] == "charge_automatically"
    assert inv["total"] == 15050 and inv["currency"] == "usd"
    assert [ln["amount"] for ln in line_data(inv)] == [12000, 3050]
    assert inv["metadata"]["billsync_bill_id"] == "bill-1"
    assert inv["metadata"]["billsync_account_id"] == "acc-1"
    assert inv["metadata"]["billsync_config_id"] == "cfg-std"
    assert inv["metadata"]["billsync_bill_version"] == "1"
    pending = [i for i in env.fake.invoice_items() if i["id"] == other.id]
    assert pending[0]["invoice"] is None
    assert result == DeliveryResult(
        RunStatus.COMPLETE,
        InvoiceState.FINALIZED,
        inv["id"],
        inv["hosted_invoice_url"] or result.url,
    )
    assert result.url


async def test_leave_as_draft_is_two_calls(env: Env) -> None:
    result = await env.deliver(env.envelope(bill(), leaveInvoicesAsDrafts=True))
    assert env.calls == 2
    inv = env.invoice()
    assert inv["status"] == "draft" and inv["auto_advance"] is False
    assert result.state is InvoiceState.DRAFT
    assert result.url == f"https://dashboard.stripe.com/test/invoices/{inv['id']}"


async def test_250_lines_are_one_add_lines_call(env: Env) -> None:
    lines = [item(f"l{i}", "1.00") for i in range(250)]
    await env.deliver(env.envelope(bill(*lines)))
    assert env.calls == 3
    inv = env.invoice()
    assert len(line_data(inv)) == 250 and inv["total"] == 25000


async def test_more_than_250_lines_collapse(env: Env) -> None:
    lines = [item(f"l{i}", "1.00") for i in range(251)]
    await env.deliver(env.envelope(bill(*lines), companyName="Acme Usage"))
    (only,) = line_data(env.invoice())
    assert only["amount"] == 25100
    assert only["description"] == "Acme Usage — 251 charges, total 251 USD"


async def test_idempotency_keys_and_a_retry_reuse_them(env: Env) -> None:
    envelope = env.envelope(bill())
    env.fault(path_prefix="/v1/invoices", method="POST", action="drop_after_commit")
    with pytest.raises(ProviderTimeoutError):
        await env.deliver(envelope)
    # Even without a look-up, the same key makes Stripe answer with the same invoice.
    result = await env.deliver(envelope, attempt=2)
    inv = env.invoice()
    assert result.external_id == inv["id"]
    assert env.fake.stats["idempotent_replays"] == 1
    keys = {e["type"]: e["request"]["idempotency_key"] for e in env.fake.events()}
    assert keys["invoice.created"] == idempotency_key("cfg-std", "bill-1", 1, "create")
    assert keys["invoice.finalized"] == idempotency_key(
        "cfg-std", "bill-1", 1, "finalize", inv["id"]
    )


# ---- m3ter settings ---------------------------------------------------------------------


async def test_price_data_product(env: Env) -> None:
    await env.deliver(
        env.envelope(
            bill(item("a", "30.00", "3"), item("c", "-5.00")), priceDataProductId="prod_tax"
        )
    )
    first, credit = line_data(env.invoice())
    assert first["pricing"]["price_details"]["product"] == "prod_tax"
    assert first["quantity"] == 3 and first["amount"] == 3000
    assert first["pricing"]["unit_amount_decimal"] == "1000"
    assert credit["amount"] == -500


async def test_po_number_custom_field(env: Env) -> None:
    await env.deliver(
        env.envelope(bill(purchase_order_number="PO-77"), poNumberCustomField="PO Number")
    )
    assert env.invoice()["custom_fields"] == [{"name": "PO Number", "value": "PO-77"}]


async def test_send_due_date_with_send_invoice(env: Env) -> None:
    await env.deliver(
        env.envelope(bill(due_date="2030-12-01"), sendDueDate=True, collectionMethod="send_invoice")
    )
    inv = env.invoice()
    assert inv["collection_method"] == "send_invoice"
    assert inv["due_date"] == int(datetime(2030, 12, 1, 12, tzinfo=UTC).timestamp())


async def test_send_due_date_ignored_when_charging_automatically(env: Env) -> None:
    await env.deliver(env.envelope(bill(due_date="2030-12-01"), sendDueDate=True))
    assert env.invoice()["due_date"] is None


async def test_days_until_due_and_per_customer_collection_method(env: Env) -> None:
    account = Account(id="acc-1", custom_fields={"stripe_collection_method": "send_invoice"})
    await env.deliver(env.envelope(bill(), account, daysUntilDue=14))
    inv = env.invoice()
    assert inv["collection_method"] == "send_invoice"
    assert inv["due_date"] == inv["created"] + 14 * 86400


# ---- Metronome settings -----------------------------------------------------------------


async def test_skip_zero_total_makes_no_call(env: Env) -> None:
    envelope = env.envelope(bill(item("a", "0.40")), skipZeroTotalInvoices=True)
    result = await env.deliver(envelope)
    assert (result.status, result.state) == (RunStatus.SKIPPED, InvoiceState.SKIPPED)
    assert "minimum charge" in (result.message or "")
    assert env.calls == 0 and env.fake.stats["requests"] == 0


async def test_zero_total_invoice_is_auto_paid(env: Env) -> None:
    result = await env.deliver(env.envelope(bill(item("a", "5"), item("b", "-5"))))
    assert result.state is InvoiceState.PAID
    assert env.invoice()["status"] == "paid"


async def test_zero_quantity_lines(env: Env) -> None:
    lines = (item("a"), item("z", "0", "0"))
    await env.deliver(env.envelope(bill(*lines)))
    assert [ln["description"] for ln in line_data(env.invoice())] == ["a"]
    await env.deliver(env.envelope(bill(*lines, bill_id="bill-2"), showZeroQuantityLines=True))
    assert len(line_data(env.invoice("bill-2"))) == 2


async def test_decimal_quantities(env: Env) -> None:
    usage = item(
        "li-1", "1218.80", "1523.5", unit="call", averageUnitPrice="0.8", description="API calls"
    )
    await env.deliver(
        env.envelope(
            bill(usage, item("li-2", "50", "5", averageUnitPrice="10")), priceDataProductId="prod_1"
        )
    )
    first, second = line_data(env.invoice())
    assert (first["quantity"], second["quantity"]) == (1, 1)
    assert first["description"] == f"API calls — 1,523.5 call {TIMES} 0.8 USD"
    assert second["description"] == f"li-2 — 5 {TIMES} 10 USD"
    assert (first["amount"], second["amount"]) == (121880, 5000)


async def test_send_decimal_quantities_the_local_stripe_charges_them(env: Env) -> None:
    usage = item(
        "li-1", "1218.80", "1523.5", unit="call", averageUnitPrice="0.8", description="API calls"
    )
    lines = (usage, item("li-2", "50", "5", averageUnitPrice="10"))
    settings = {"priceDataProductId": "prod_1", "sendDecimalQuantities": True}
    await env.deliver(env.envelope(bill(*lines), **settings))
    first, second = line_data(env.invoice())
    assert (first["quantity"], first["quantity_decimal"]) == (None, "1523.5")
    assert first["description"] == "API calls"  # Stripe shows the quantity itself
    assert (second["quantity"], second["description"]) == (5, "li-2")
    assert (first["amount"], second["amount"]) == (121880, 5000)
    await env.deliver(
        env.envelope(bill(*lines, bill_id="bill-2"), createStripeInvoice=False, **settings)
    )
    decimals = sorted(str(i["quantity_decimal"]) for i in env.fake.invoice_items())
    assert "1523.5" in decimals


async def test_always_show_price_and_quantity(env: Env) -> None:
    await env.deliver(
        env.envelope(
            bill(item("a", "30", "3", averageUnitPrice="10")),
            priceDataProductId="prod_1",
            alwaysShowPriceAndQuantity=True,
        )
    )
    (only,) = line_data(env.invoice())
    assert only["quantity"] == 3 and only["description"] == f"a — 3 {TIMES} 10 USD"


async def test_above_maximum_is_fatal_before_any_call(env: Env) -> None:
    with pytest.raises(FatalBillError, match=r"999,999\.99"):
        await env.deliver(env.envelope(bill(item("a", "1000000.00"))))
    assert env.calls == 0 and env.fake.stats["requests"] == 0


@pytest.mark.parametrize(
    ("currency", "subtotal", "minor"),
    # Three-decimal amounts end in 0 (Stripe's rule): 1.235 BHD -> 1.240, 5.124 KWD -> 5.120.
    [("JPY", "1500", 1500), ("BHD", "1.235", 1240), ("KWD", "5.124", 5120), ("EUR", "1.005", 101)],
)
async def test_minor_units_per_currency(env: Env, currency: str, subtotal: str, minor: int) -> None:
    env.fake.seed_customer(CUSTOMER, currency=currency.lower())
    await env.deliver(env.envelope(bill(item("a", subtotal), currency=currency)))
    inv = env.invoice()
    assert (inv["currency"], inv["total"]) == (currency.lower(), minor)


async def test_service_period(env: Env) -> None:
    usage = item(
        "a",
        servicePeriodStartDate="2026-10-01T00:00:00Z",
        servicePeriodEndDate="2026-11-01T00:00:00Z",
    )
    await env.deliver(env.envelope(bill(usage)))
    (only,) = line_data(env.invoice())
    start = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())
    assert only["period"] == {"start": start, "end": start + 31 * 86400 - 1}


async def test_field_mappings_reach_invoice_and_lines(env: Env) -> None:
    usage = item("a", productCustomFields={"stripe_product_id": "prod_gold", "sku": "G-1"})
    account = Account(id="acc-1", account_name="Acme", custom_fields={"region": "EMEA"})
    maps = [
        {
            "source": "account.customFields.region",
            "target": "invoice.custom_field",
            "name": "Region",
        },
        {"source": "account.accountName", "target": "invoice.metadata", "name": "customer"},
        {"source": "product.customFields.stripe_product_id", "target": "line.product"},
        {"source": "product.customFields.sku", "target": "line.metadata", "name": "sku"},
    ]
    await env.deliver(env.envelope(bill(usage), account, fieldMappings=maps))
    inv = env.invoice()
    assert inv["custom_fields"] == [{"name": "Region", "value": "EMEA"}]
    assert inv["metadata"]["customer"] == "Acme"
    (only,) = line_data(inv)
    assert only["pricing"]["price_details"]["product"] == "prod_gold"
    assert only["metadata"] == {"billsync_line_id": "a", "sku": "G-1"}


async def test_custom_field_limit_is_refused_before_any_call(env: Env) -> None:
    maps = [
        {"source": f"bill.customFields.k{i}", "target": "invoice.custom_field", "name": f"F{i}"}
        for i in range(4)
    ]
    b = bill(purchase_order_number="PO-1", custom_fields={f"k{i}": "v" for i in range(4)})
    with pytest.raises(ValidationError, match="Stripe allows 4"):
        await env.deliver(env.envelope(b, poNumberCustomField="PO", fieldMappings=maps))
    assert env.fake.stats["requests"] == 0


# ---- regeneration, resend, recovery -----------------------------------------------------


async def test_regenerated_draft_gets_its_lines_replaced(env: Env) -> None:
    v1 = env.envelope(bill(), leaveInvoicesAsDrafts=True)
    first = await env.deliver(v1)
    v2 = env.envelope(
        bill(item("n1", "7.00"), version=2, purchase_order_number="PO-2"),
        leaveInvoicesAsDrafts=True,
        poNumberCustomField="PO",
    )
    second = await env.deliver(v2, record_of(v1, first))
    assert second.external_id == first.external_id and second.state is InvoiceState.DRAFT
    # retrieve, update, remove_lines, add_lines (the invoice embeds its <= 10 lines)
    assert env.calls == 4
    inv = env.invoice()
    assert [ln["description"] for ln in line_data(inv)] == ["n1"] and inv["total"] == 700
    assert inv["metadata"]["billsync_bill_version"] == "2"
    assert inv["custom_fields"] == [{"name": "PO", "value": "PO-2"}]
    assert env.endpoints()["POST /v1/invoices/{id}/remove_lines"] == 1


async def test_regenerated_draft_with_same_lines_keeps_them(env: Env) -> None:
    v1 = env.envelope(bill(), leaveInvoicesAsDrafts=True)
    first = await env.deliver(v1)
    v2 = env.envelope(bill(version=2), leaveInvoicesAsDrafts=True)
    await env.deliver(v2, record_of(v1, first))
    assert env.calls == 2  # retrieve + update
    assert env.invoice()["metadata"]["billsync_bill_version"] == "2"


async def test_regenerated_draft_is_finalized_when_not_left_as_draft(env: Env) -> None:
    v1 = env.envelope(bill(), leaveInvoicesAsDrafts=True)
    first = await env.deliver(v1)
    second = await env.deliver(env.envelope(bill(version=2)), record_of(v1, first))
    assert second.state is InvoiceState.FINALIZED
    inv = env.invoice()
    assert inv["status"] == "open" and inv["auto_advance"] is True


@pytest.mark.parametrize(
    ("action", "state"),
    [("finalize", InvoiceState.FINALIZED), ("pay", InvoiceState.PAID), ("void", InvoiceState.VOID)],
)
async def test_finalized_paid_or_void_invoice_is_not_modified(
    env: Env, action: str, state: InvoiceState
) -> None:
    v1 = env.envelope(bill(), leaveInvoicesAsDrafts=True)
    first = await env.deliver(v1)
    assert first.external_id
    api = env.api()
    try:
        await api.finalize(first.external_id, "op-finalize")
        if action == "pay":
            await api._v1.invoices.pay_async(first.external_id, {"paid_out_of_band": True})
        elif action == "void":
            await api._v1.invoices.void_invoice_async(first.external_id)
    finally:
        await api.close()
    before = env.invoice()
    second = await env.deliver(
        env.envelope(bill(item("x", "1.00"), version=2), leaveInvoicesAsDrafts=True),
        record_of(v1, first),
    )
    assert (second.status, second.state) == (RunStatus.INVOICE_ALREADY_PAID, state)
    assert second.external_id == first.external_id
    assert "never changes a finalized invoice" in (second.message or "")
    assert env.calls == 1
    assert env.invoice() == before


async def test_same_version_again_after_finalize_is_complete(env: Env) -> None:
    envelope = env.envelope(bill())
    first = await env.deliver(envelope)
    again = await env.deliver(envelope, record_of(envelope, first))
    assert (again.status, again.state) == (RunStatus.COMPLETE, InvoiceState.FINALIZED)
    assert env.calls == 1


async def test_deleted_draft_is_recreated(env: Env) -> None:
    v1 = env.envelope(bill(), leaveInvoicesAsDrafts=True)
    first = await env.deliver(v1)
    assert first.external_id
    api = env.api()
    try:
        await api.delete_invoice(first.external_id)
    finally:
        await api.close()
    second = await env.deliver(v1, record_of(v1, first))
    assert second.external_id != first.external_id
    assert env.invoice()["id"] == second.external_id


async def test_skip_deletes_an_earlier_draft(env: Env) -> None:
    v1 = env.envelope(bill(), leaveInvoicesAsDrafts=True, skipZeroTotalInvoices=True)
    first = await env.deliver(v1)
    v2 = env.envelope(
        bill(item("a", "0"), version=2), leaveInvoicesAsDrafts=True, skipZeroTotalInvoices=True
    )
    second = await env.deliver(v2, record_of(v1, first))
    assert second.status is RunStatus.SKIPPED
    assert f"deleted the earlier draft {first.external_id}" in (second.message or "")
    assert env.invoices() == []


async def test_recovery_finds_a_draft_without_lines(env: Env) -> None:
    env.fault(path_prefix="/v1/invoices", method="POST", action="drop_after_commit")
    envelope = env.envelope(bill())
    with pytest.raises(ProviderTimeoutError):
        await env.deliver(envelope)
    assert line_data(env.invoice()) == []
    result = await env.deliver(envelope, recovering=True, attempt=2)
    inv = env.invoice()
    assert result.external_id == inv["id"] and inv["total"] == 15050
    assert env.endpoints()["POST /v1/invoices"] == 1
    # one consistent list finds it; the fields are already right: no update
    assert env.calls == 3  # list, add_lines, finalize
    assert "GET /v1/invoices/search" not in env.endpoints()


async def test_recovery_searches_when_the_customer_has_more_invoices(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    envelope = env.envelope(bill())
    first = await env.deliver(envelope)
    api = env.api()
    try:  # newer invoices of the same customer push ours off the first page
        for n in range(2):
            await api.create_invoice({"customer": CUSTOMER}, f"other-{n}")
    finally:
        await api.close()
    monkeypatch.setattr("services.stripe_sink.client.PAGE", 1)
    queries: list[str] = []
    search = StripeApi.search_invoices

    async def spy(self: StripeApi, query: str) -> Any:
        queries.append(query)
        return await search(self, query)

    monkeypatch.setattr(StripeApi, "search_invoices", spy)
    result = await env.deliver(envelope, recovering=True, attempt=2)
    assert result.external_id == first.external_id and result.status is RunStatus.COMPLETE
    assert queries == [
        "metadata['billsync_bill_id']:'bill-1' AND metadata['billsync_config_id']:'cfg-std'"
    ]
    assert env.endpoints()["GET /v1/invoices/search"] == 1
    assert len(env.invoices()) == 1


async def test_recovery_with_search_lag_still_finds_the_invoice(env: Env) -> None:
    env.fake.configure(search_lag_seconds=3600)
    envelope = env.envelope(bill())
    first = await env.deliver(envelope)
    result = await env.deliver(envelope, recovering=True, attempt=2)
    assert result.external_id == first.external_id and result.status is RunStatus.COMPLETE
    assert env.calls == 1 and len(env.invoices()) == 1


async def test_recovery_after_add_lines_dropped(env: Env) -> None:
    envelope = env.envelope(bill())
    api_calls: list[str] = []
    original = StripeApi.add_lines

    async def drop_once(self: StripeApi, *args: Any) -> Any:
        api_calls.append("add_lines")
        if len(api_calls) == 1:
            env.fault(path_prefix="/v1/invoices/", method="POST", action="drop_after_commit")
        return await original(self, *args)

    StripeApi.add_lines = drop_once  # type: ignore[method-assign]
    try:
        with pytest.raises(ProviderTimeoutError):
            await env.deliver(envelope)
        result = await env.deliver(envelope, recovering=True, attempt=2)
    finally:
        StripeApi.add_lines = original  # type: ignore[method-assign]
    inv = env.invoice()
    assert result.state is InvoiceState.FINALIZED and inv["total"] == 15050
    assert len(line_data(inv)) == 2 and len(api_calls) == 1  # the digest said: lines in place


async def test_saved_server_errors_never_block_the_delivery(env: Env) -> None:
    """Stripe saves a 500 under its key and replays it: every attempt after a 5xx looks up
    first and writes with a fresh key generation, so five saved 500s in a row (on create,
    then on add_lines) still end in one complete invoice."""
    env.fault(path_prefix="/v1/invoices", method="POST", status=500, count=5, replayed=True)
    envelope = env.envelope(bill())
    attempt = 1
    while True:
        try:
            result = await env.deliver(envelope, recovering=attempt > 1, attempt=attempt)
            break
        except RetriableError:
            attempt += 1
            assert attempt <= 6
    assert result.status is RunStatus.COMPLETE and attempt == 6
    inv = env.invoice()
    assert inv["status"] == "open" and len(line_data(inv)) == 2


async def test_a_half_written_draft_is_completed(env: Env) -> None:
    """create answered, add_lines dropped after commit, finalize 500: the next attempt
    finds the draft, sees its lines in place and finalizes it."""
    envelope = env.envelope(bill())
    env.fake.configure(
        faults={
            "rules": [
                {
                    "path_prefix": "/v1/invoices/",
                    "method": "POST",
                    "count": 1,
                    "action": "drop_after_commit",
                },
            ]
        }
    )
    with pytest.raises(ProviderTimeoutError):
        await env.deliver(envelope)
    assert env.invoice()["status"] == "draft"
    env.fault(path_prefix="/v1/invoices/", method="POST", status=500, replayed=True)
    with pytest.raises(RetriableError):
        await env.deliver(envelope, recovering=True, attempt=2)
    result = await env.deliver(envelope, recovering=True, attempt=3)
    inv = env.invoice()
    assert result.status is RunStatus.COMPLETE and inv["status"] == "open"
    assert len(line_data(inv)) == 2


# ---- pending invoice items (createStripeInvoice=false) ----------------------------------


async def test_pending_items_one_call_per_line(env: Env) -> None:
    envelope = env.envelope(bill(), createStripeInvoice=False)
    result = await env.deliver(envelope)
    assert env.calls == 2 and env.invoices() == []
    items = env.fake.invoice_items()
    assert [i["id"] for i in items] == result.external_item_ids
    assert all(i["invoice"] is None for i in items)
    assert [i["amount"] for i in items] == [12000, 3050]
    assert items[0]["metadata"]["billsync_bill_id"] == "bill-1"
    assert (result.status, result.state) == (RunStatus.COMPLETE, InvoiceState.PENDING_ITEMS)
    assert result.external_id == items[0]["id"]
    assert result.url == f"https://dashboard.stripe.com/test/customers/{CUSTOMER}"


async def test_pending_items_regenerated_while_pending(env: Env) -> None:
    v1 = env.envelope(bill(), createStripeInvoice=False)
    first = await env.deliver(v1)
    v2 = env.envelope(bill(item("n1", "7.00"), version=2), createStripeInvoice=False)
    second = await env.deliver(v2, record_of(v1, first))
    items = env.fake.invoice_items()
    assert [i["id"] for i in items] == second.external_item_ids
    assert [i["amount"] for i in items] == [700]
    assert set(first.external_item_ids).isdisjoint(second.external_item_ids)


async def test_pending_items_already_invoiced(env: Env) -> None:
    v1 = env.envelope(bill(), createStripeInvoice=False)
    first = await env.deliver(v1)
    api = env.api()
    try:  # the subscription's next invoice picks them up
        inv = await api.create_invoice(
            {"customer": CUSTOMER, "pending_invoice_items_behavior": "include"}, "sub"
        )
    finally:
        await api.close()
    v2 = env.envelope(bill(item("n1", "7.00"), version=2), createStripeInvoice=False)
    second = await env.deliver(v2, record_of(v1, first))
    assert second.status is RunStatus.INVOICE_ALREADY_PAID
    assert second.external_id == inv.id and second.state is InvoiceState.DRAFT
    assert sorted(i["id"] for i in env.fake.invoice_items()) == sorted(first.external_item_ids)


async def test_pending_items_recovery_creates_no_duplicates(env: Env) -> None:
    env.fault(path_prefix="/v1/invoiceitems", method="POST", action="drop_after_commit")
    envelope = env.envelope(bill(), createStripeInvoice=False)
    with pytest.raises(ProviderTimeoutError):
        await env.deliver(envelope)
    result = await env.deliver(envelope, recovering=True, attempt=2)
    assert len(env.fake.invoice_items()) == 2 == len(result.external_item_ids)
    assert env.endpoints()["POST /v1/invoiceitems"] == 2


async def test_switch_from_pending_items_to_invoice(env: Env) -> None:
    v1 = env.envelope(bill(), createStripeInvoice=False)
    first = await env.deliver(v1)
    second = await env.deliver(env.envelope(bill(version=2)), record_of(v1, first))
    assert second.state is InvoiceState.FINALIZED
    assert [i["invoice"] for i in env.fake.invoice_items()] == [second.external_id] * 2


# ---- client, credentials, classification ------------------------------------------------


async def test_connected_account(fake_stripe: FakeStripe) -> None:
    fake = fresh(fake_stripe)
    fake.seed_customer(CUSTOMER, currency="usd", account="acct_123")
    env = Env(fake, account="acct_123")
    result = await env.deliver(env.envelope(bill(), leaveInvoicesAsDrafts=True))
    assert [i["id"] for i in fake.invoices("acct_123")] == [result.external_id]
    assert fake.invoices() == []
    assert result.url == f"https://dashboard.stripe.com/acct_123/test/invoices/{result.external_id}"


async def test_rejected_key_and_rate_limit(env: Env) -> None:
    envelope = env.envelope(bill())
    env.fault(path_prefix="/v1/", status=429)
    with pytest.raises(RateLimitedError) as caught:
        await env.deliver(envelope)
    assert caught.value.retry_after == 1.0 and caught.value.status_code == 429
    env.h.credential = StripeCredential(id="c", api_key=SecretStr("sk_test_nope"))
    with pytest.raises(AuthenticationError):
        await env.deliver(envelope)


def test_live_key_is_refused_for_test_mode_and_back() -> None:
    dest = StripeDestination(api_base="http://127.0.0.1:9")
    live = StripeCredential(id="l", api_key=SecretStr("sk_live_abc"))
    test = StripeCredential(id="t", api_key=SecretStr("rk_test_abc"))
    with pytest.raises(AuthenticationError, match="live-mode key"):
        dest.make_client(Destination.STRIPE_TEST, live)
    with pytest.raises(AuthenticationError, match="test-mode key"):
        dest.make_client(Destination.STRIPE, test)


def test_rate_spec() -> None:
    dest = StripeDestination()
    cred = StripeCredential(id="t", api_key=SecretStr("sk_test_abc"))
    assert dest.rate_spec(Destination.STRIPE, cred) == RateSpec(100, 25)
    assert dest.rate_spec(Destination.STRIPE_TEST, cred) == RateSpec(25, 25)
    assert (dest.family, dest.credential_type) == ("stripe", StripeCredential)


def test_api_base_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_BASE_ENV, raising=False)
    assert StripeDestination().api_base == DEFAULT_API_BASE == "https://api.stripe.com"
    monkeypatch.setenv(API_BASE_ENV, "http://127.0.0.1:12111")
    assert StripeDestination().api_base == "http://127.0.0.1:12111"
    assert StripeDestination("http://other").api_base == "http://other"


def _error(
    cls: type[stripe.StripeError],
    status: int | None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> stripe.StripeError:
    body = {"error": {"type": "invalid_request_error", "message": "m", "code": code}}
    return cls("m", http_status=status, json_body=body, headers=headers or {}, code=code)


def test_classify() -> None:
    classify = StripeDestination().classify
    limited = classify(_error(stripe.RateLimitError, 429, "rate_limit", {"Retry-After": "2"}))
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 2.0
    assert isinstance(classify(_error(stripe.AuthenticationError, 401)), AuthenticationError)
    assert isinstance(classify(_error(stripe.PermissionError, 403)), AuthenticationError)
    server = classify(_error(stripe.APIError, 500))
    assert isinstance(server, RetriableError) and server.status_code == 500
    invalid = stripe.InvalidRequestError(
        "m",
        "amount",
        code="parameter_invalid_integer",
        http_status=400,
        json_body={
            "error": {
                "type": "invalid_request_error",
                "message": "m",
                "param": "amount",
                "code": "parameter_invalid_integer",
            }
        },
    )
    fatal = classify(invalid)
    assert isinstance(fatal, FatalBillError)
    assert fatal.provider_code == "parameter_invalid_integer"
    dropped = classify(stripe.APIConnectionError("boom"))
    assert isinstance(dropped, RetriableError) and dropped.status_code is None
    assert isinstance(classify(TimeoutError()), RetriableError)
    assert classify(ValueError("bug")) is None


def test_decimal_is_sent_as_plain_text() -> None:
    assert str(Decimal("33.333333333333")) == "33.333333333333"


async def test_void_invoice_is_reissued_only_on_an_operator_resend(env: Env) -> None:
    envelope = env.envelope(bill())
    first = await env.deliver(envelope)
    assert first.external_id
    api = env.api()
    try:
        await api._v1.invoices.void_invoice_async(first.external_id)
    finally:
        await api.close()
    again = await env.deliver(envelope, record_of(envelope, first))
    assert again.status is RunStatus.INVOICE_ALREADY_PAID and again.state is InvoiceState.VOID
    assert "resend the bill" in (again.message or "")
    resend = envelope.model_copy(update={"resend_of_run_id": "run-0"})
    issued = await env.deliver(resend, record_of(envelope, first))
    assert issued.status is RunStatus.COMPLETE and issued.external_id != first.external_id
    statuses = sorted(i["status"] for i in env.invoices())
    assert statuses == ["open", "void"]


async def test_switch_from_invoice_to_pending_items_deletes_the_draft(env: Env) -> None:
    v1 = env.envelope(bill(), leaveInvoicesAsDrafts=True)
    first = await env.deliver(v1)
    second = await env.deliver(
        env.envelope(bill(version=2), createStripeInvoice=False), record_of(v1, first)
    )
    assert second.state is InvoiceState.PENDING_ITEMS
    assert env.invoices() == []
    assert [i["invoice"] for i in env.fake.invoice_items()] == [None, None]


async def test_pending_items_skipped_later_are_deleted(env: Env) -> None:
    v1 = env.envelope(bill(), createStripeInvoice=False, skipZeroTotalInvoices=True)
    first = await env.deliver(v1)
    v2 = env.envelope(
        bill(item("a", "0"), version=2), createStripeInvoice=False, skipZeroTotalInvoices=True
    )
    second = await env.deliver(v2, record_of(v1, first))
    assert second.status is RunStatus.SKIPPED and "deleted 2 pending items" in (
        second.message or ""
    )
    assert env.fake.invoice_items() == []


async def test_regeneration_switches_collection_method(env: Env) -> None:
    v1 = env.envelope(bill(), leaveInvoicesAsDrafts=True)
    first = await env.deliver(v1)
    v2 = env.envelope(bill(version=2), leaveInvoicesAsDrafts=True, collectionMethod="send_invoice")
    await env.deliver(v2, record_of(v1, first))
    inv = env.invoice()
    assert inv["collection_method"] == "send_invoice"
    assert inv["due_date"] == inv["created"] + 30 * 86400


async def test_pending_items_recreated_after_deletion_are_live(env: Env) -> None:
    v1 = env.envelope(bill(), createStripeInvoice=False)
    first = await env.deliver(v1)
    v2 = env.envelope(bill(item("n1", "7.00"), version=2), createStripeInvoice=False)
    second = await env.deliver(v2, record_of(v1, first))
    # The same items as the first delivery, within Stripe's 24 h key memory.
    third = await env.deliver(v1, record_of(v2, second))
    live = {i["id"] for i in env.fake.invoice_items()}
    assert set(third.external_item_ids) == live and len(live) == 2
    assert live.isdisjoint(first.external_item_ids)
