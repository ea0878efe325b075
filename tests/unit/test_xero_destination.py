"""The Xero destination against the local Xero (no broker): batches, per-document answers,
regeneration, approved documents, recovery after a drop, credit notes, limits, connections.
Every request the sink sent is checked against Xero's OpenAPI document too."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from fakes.xero import FakeXero, spec
from services.xero_sink.client import XeroApi
from services.xero_sink.destination import XeroDestination
from services.xero_sink.flow import document_url
from services.xero_sink.mapping import DocumentKind
from shared.contracts import (
    Account,
    Bill,
    ExternalMapping,
    ExternalSystem,
    IntegrationConfig,
    RunStatus,
)
from shared.credentials import XeroCredential
from shared.sinks.batching import Outcome
from shared.sinks.customers import bill_mappings
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.errors import (
    AuthenticationError,
    FatalBillError,
    InvoiceLockedError,
    ProviderTimeoutError,
    RateLimitedError,
    RetriableError,
)
from shared.sinks.invoice_map import InvoiceMapRecord, InvoiceState
from shared.sinks.limits import ProviderLimits, QuotaExhaustedError, QuotaLimiter, Scope, Window
from shared.sinks.standard_tests import generated_envelope
from tests.support.builders import bill as make_bill
from tests.support.builders import config as make_config
from tests.support.builders import line

TENANT = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"
CONTACT = "430fa14a-f945-44d3-9f97-5df5e28441b8"
CLIENT, SECRET = "xero-client", "xero-secret"


@pytest.fixture
async def fake() -> AsyncIterator[FakeXero]:
    fake = FakeXero(clients={CLIENT: SECRET, "custom": "custom-secret"})
    for tenant in (TENANT, OTHER):
        org = fake.add_organisation(f"Org {tenant[:2]}", tenant)
        org.add_contact("Acme", CONTACT)
        org.add_item("API", "API calls", "200")
        fake.connect(CLIENT, tenant)
    fake.config.custom_connections["custom"] = OTHER
    await fake.start()
    yield fake
    await fake.stop()


def credential(fake: FakeXero, tenant: str = TENANT, **fields: Any) -> XeroCredential:
    data: dict[str, Any] = {
        "id": f"cred-{tenant[:2]}",
        "client_id": CLIENT,
        "client_secret": SecretStr(SECRET),
        "tenant_id": tenant,
        "access_token": SecretStr(fake.issue_tokens(CLIENT)["access_token"]),
    }
    data.update(fields)
    return XeroCredential(**data)


def xero_config(**dest: Any) -> IntegrationConfig:
    entity = {"useExternalMappingAccountCode": True}
    return make_config("cfg-x", "XERO", entity=entity, dest=dest, integrationCredentialsId="c")


def request(
    b: Bill,
    cfg: IntegrationConfig | None = None,
    *,
    existing: InvoiceMapRecord | None = None,
    recovering: bool = False,
    mappings: Sequence[ExternalMapping] = (),
) -> DeliveryRequest:
    """A request as the framework builds it: with the bill's Xero mappings."""
    cfg = cfg or xero_config()
    envelope = generated_envelope(cfg, b, Account(id=b.account_id, account_name="Acme"))
    view = bill_mappings(
        b, cfg, ExternalSystem.XERO, lambda s, i: [m for m in mappings if m.m3ter_id == i]
    )
    return DeliveryRequest(envelope, cfg, CONTACT, existing, recovering, 1, f"run-{b.id}", view)


def bill(bill_id: str = "bill-1", version: int = 1, *lines: Any, **fields: Any) -> Bill:
    items = list(lines) or [line("li-1", "USAGE", "12.50", quantity="5", productId="prod-api")]
    fields.setdefault("bill_date", dt.date(2026, 11, 1))
    fields.setdefault("due_date", dt.date(2026, 12, 1))
    return make_bill(bill_id, version=version, lines=items, **fields)


def record(result: DeliveryResult, b: Bill) -> InvoiceMapRecord:
    return InvoiceMapRecord(
        integration_config_id="cfg-x",
        bill_id=b.id,
        bill_version=b.version,
        state=result.state,
        external_id=result.external_id,
        url=result.url,
        updated_at=datetime.now(UTC),
    )


class Sink:
    def __init__(self, fake: FakeXero, cred: XeroCredential, **kwargs: Any) -> None:
        self.fake = fake
        self.destination = XeroDestination(
            fake.url, token_url=f"{fake.url}/connect/token", **kwargs
        )
        self.client: XeroApi = self.destination.make_client(  # type: ignore[assignment]
            xero_config().destination, cred
        )
        self.limiter = QuotaLimiter(self.destination.limits)

    async def deliver(self, requests: Sequence[DeliveryRequest]) -> list[Outcome]:
        calls = ProviderCalls("xero", self.limiter, self.destination.classify, "cred")
        return await self.destination.deliver_batch(list(requests), self.client, calls)

    async def close(self) -> None:
        await self.client.close()


@pytest.fixture
async def sink(fake: FakeXero) -> AsyncIterator[Sink]:
    sink = Sink(fake, credential(fake))
    yield sink
    await sink.close()


def sent_elements(fake: FakeXero) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for req in fake.requests:
        collection = req["path"].rsplit("/", 1)[-1]
        for element in req["body"][collection]:
            out.append((collection, element))
    return out


def assert_spec_accepted_everything(fake: FakeXero) -> None:
    """What the sink sent, checked against the spec (not only the fake's answers)."""
    for collection, element in sent_elements(fake):
        schema = "Invoice" if collection == "Invoices" else "CreditNote"
        assert spec.errors(schema, element) == [], element
    for req in fake.requests:
        assert req["query"]["summarizeErrors"] == "false" and req["query"]["unitdp"] == "4"
        assert req["headers"]["xero-tenant-id"] == TENANT
        assert 0 < len(req["headers"]["Idempotency-Key"]) <= 128


def ok(outcome: Outcome) -> DeliveryResult:
    assert isinstance(outcome, DeliveryResult), outcome
    return outcome


# ---- batches ------------------------------------------------------------------------------


async def test_fifty_bills_go_in_one_call_one_invoice_each(fake: FakeXero, sink: Sink) -> None:
    bills = [bill(f"bill-{i:02d}") for i in range(50)]
    outcomes = await sink.deliver([request(b) for b in bills])
    assert all(ok(o).status is RunStatus.COMPLETE for o in outcomes)
    assert fake.stats["batch_sizes"] == [50] and fake.stats["admitted"] == 1
    docs = {d["InvoiceNumber"]: d for d in fake.documents(TENANT)}
    assert sorted(docs) == [b.id for b in bills]
    first = ok(outcomes[0])
    assert first.external_id == docs["bill-00"]["InvoiceID"] and first.state is InvoiceState.DRAFT
    assert first.url == document_url(DocumentKind.INVOICE, docs["bill-00"]["InvoiceID"])
    assert docs["bill-00"]["Reference"] == "bill-00 (v1)" and docs["bill-00"]["Type"] == "ACCREC"
    assert_spec_accepted_everything(fake)


async def test_one_refused_bill_fails_alone(fake: FakeXero, sink: Sink) -> None:
    good = bill("bill-good")
    unknown_contact = request(bill("bill-bad"))
    unknown_contact = DeliveryRequest(
        unknown_contact.envelope,
        unknown_contact.config,
        "99999999-9999-4999-8999-999999999999",
        None,
        False,
        1,
        "run-bad",
    )
    too_long = bill("bill-long", 1, line("li", "USAGE", "1", description="d" * 4001))
    outcomes = await sink.deliver([request(good), unknown_contact, request(too_long)])
    assert ok(outcomes[0]).status is RunStatus.COMPLETE
    assert (
        isinstance(outcomes[1], FatalBillError)
        and "contact could not be found" in outcomes[1].message
    )
    assert isinstance(outcomes[2], FatalBillError) and "4000" in outcomes[2].message
    assert fake.stats["batch_sizes"] == [2]  # the plan refused the third before the call
    assert [d["InvoiceNumber"] for d in fake.documents(TENANT)] == ["bill-good"]


@pytest.mark.parametrize("status", ["DRAFT", "SUBMITTED", "AUTHORISED"])
async def test_status_and_settings_reach_xero(fake: FakeXero, sink: Sink, status: str) -> None:
    cfg = xero_config(
        invoiceStatus=status, lineAmountTypes="Inclusive", taxType="OUTPUT2", salesAccountCode="260"
    )
    ok((await sink.deliver([request(bill(), cfg)]))[0])
    (doc,) = fake.documents(TENANT)
    assert doc["Status"] == status and doc["LineAmountTypes"] == "Inclusive"
    assert (
        doc["LineItems"][0]["TaxType"] == "OUTPUT2" and doc["LineItems"][0]["AccountCode"] == "260"
    )
    assert doc["DueDateString"].startswith("2026-12-01")


async def test_item_codes_come_from_the_mappings_the_sink_is_given(fake: FakeXero) -> None:
    item = ExternalMapping.model_validate(
        {
            "id": "m1",
            "externalSystem": "Xero",
            "externalTable": "Item",
            "externalId": "API",
            "m3terEntity": "Product",
            "m3terId": "prod-api",
        }
    )

    sink = Sink(fake, credential(fake))
    try:
        ok((await sink.deliver([request(bill(), mappings=[item])]))[0])
    finally:
        await sink.close()
    assert fake.documents(TENANT)[0]["LineItems"][0]["ItemCode"] == "API"


# ---- regeneration and approved documents --------------------------------------------------


async def test_a_regenerated_bill_updates_its_draft(fake: FakeXero, sink: Sink) -> None:
    first = ok((await sink.deliver([request(bill())]))[0])
    v2 = bill(
        "bill-1", 2, line("li-1", "USAGE", "99.00", quantity="3"), purchase_order_number="PO-9"
    )
    second = ok((await sink.deliver([request(v2, existing=record(first, bill()))]))[0])
    assert second.external_id == first.external_id
    (doc,) = fake.documents(TENANT)
    assert doc["Reference"] == "PO-9 (v2)" and doc["Total"] == Decimal("99.00")


async def test_an_authorised_or_paid_invoice_is_never_changed(fake: FakeXero, sink: Sink) -> None:
    first = ok((await sink.deliver([request(bill())]))[0])
    assert first.external_id
    fake.set_status(TENANT, first.external_id, "AUTHORISED")
    v2 = bill("bill-1", 2, line("li-1", "USAGE", "99.00"))
    (outcome,) = await sink.deliver([request(v2, existing=record(first, bill()))])
    assert isinstance(outcome, InvoiceLockedError)
    assert outcome.run_status is RunStatus.INVOICE_ALREADY_PAID
    fake.set_status(TENANT, first.external_id, "PAID")
    (outcome,) = await sink.deliver([request(v2, existing=record(first, bill()))])
    assert isinstance(outcome, InvoiceLockedError)
    assert fake.documents(TENANT)[0]["Total"] == Decimal("12.50")


async def test_configured_authorised_invoice_redelivered_is_complete_not_locked(
    fake: FakeXero, sink: Sink
) -> None:
    cfg = xero_config(invoiceStatus="AUTHORISED")
    first = ok((await sink.deliver([request(bill(), cfg)]))[0])
    assert first.state is InvoiceState.FINALIZED
    # The same version again (e.g. the map write was lost): ours, so COMPLETE.
    again = ok((await sink.deliver([request(bill(), cfg)]))[0])
    assert again.external_id == first.external_id and len(fake.documents(TENANT)) == 1


# ---- recovery -----------------------------------------------------------------------------


async def test_a_write_dropped_after_commit_is_looked_up_not_written_again(
    fake: FakeXero, sink: Sink
) -> None:
    fake.inject(action="drop_after_commit", method="POST")
    with pytest.raises(ProviderTimeoutError):
        await sink.deliver([request(bill("a")), request(bill("b"))])
    assert len(fake.documents(TENANT)) == 2
    writes_before = len(fake.requests)
    outcomes = await sink.deliver(
        [request(bill("a"), recovering=True), request(bill("b"), recovering=True)]
    )
    assert [ok(o).status for o in outcomes] == [RunStatus.COMPLETE] * 2
    assert len(fake.requests) == writes_before  # found by number: no second write
    assert len(fake.documents(TENANT)) == 2


async def test_after_a_5xx_the_same_write_is_sent_with_the_same_idempotency_key(
    fake: FakeXero, sink: Sink
) -> None:
    fake.inject(status=503, method="POST")
    with pytest.raises(RetriableError):
        await sink.deliver([request(bill())])
    ok((await sink.deliver([request(bill(), recovering=True)]))[0])
    ok((await sink.deliver([request(bill(), recovering=False)]))[0])
    # The third write was the second one again (same body, same key): Xero replayed it.
    assert len(fake.requests) == 1 and fake.stats["idempotent_replays"] == 1
    assert len(fake.documents(TENANT)) == 1


# ---- credit notes -------------------------------------------------------------------------


async def test_a_negative_bill_is_a_credit_note_and_a_sign_flip_deletes_the_draft(
    fake: FakeXero, sink: Sink
) -> None:
    positive = bill("bill-1", 1, line("li-1", "USAGE", "10.00"))
    first = ok((await sink.deliver([request(positive)]))[0])
    negative = bill("bill-1", 2, line("li-1", "CREDIT_MEMO", "-25.00"))
    second = ok((await sink.deliver([request(negative, existing=record(first, positive))]))[0])
    assert second.url and "ViewCreditNote" in second.url
    (invoice,) = fake.documents(TENANT)
    assert invoice["Status"] == "DELETED"
    (note,) = fake.documents(TENANT, "CreditNotes")
    assert note["Type"] == "ACCRECCREDIT" and note["CreditNoteNumber"] == "bill-1"
    assert note["Total"] == Decimal("25.00")
    assert_spec_accepted_everything(fake)


# ---- limits, errors, connections ----------------------------------------------------------


async def test_a_spent_day_parks_the_tenant_without_another_call(
    fake: FakeXero, sink: Sink
) -> None:
    fake.exhaust_day(TENANT)
    with pytest.raises(QuotaExhaustedError):
        await sink.deliver([request(bill())])
    calls = fake.stats["calls"]
    with pytest.raises(QuotaExhaustedError):  # the limiter knows now: no call at all
        await sink.deliver([request(bill())])
    assert fake.stats["calls"] == calls
    other = Sink(fake, credential(fake, OTHER))
    try:
        ok((await other.deliver([request(bill())]))[0])  # another organisation goes on
    finally:
        await other.close()


async def test_rate_headers_steer_the_limiter_before_a_429(fake: FakeXero) -> None:
    fake.config.minute_limit = 100
    sink = Sink(
        fake,
        credential(fake),
        limits=ProviderLimits((Window(100, 60.0),), concurrent=5, daily=5000, scope=Scope.TENANT),
    )
    try:
        fake.spend_minute(TENANT, 93)  # another app spends most of the organisation's minute
        ok((await sink.deliver([request(bill("b0"))]))[0])
        # X-MinLimit-Remaining said 6: the 93 were booked; with ours that is 94 of the 95
        # (95% of 100) our limiter allows, so the next call may go and the one after waits.
        state, endpoint = sink.limiter.state, "POST /Invoices"
        gap = 60 / 95 + 0.01  # the limiter's even spacing, and a little
        now = fake.clock()
        assert state.wait(endpoint, now + gap) == 0
        state.begin(endpoint, now + gap, datetime.now(UTC))
        assert state.wait(endpoint, now + 2 * gap) > 30  # full until the window slides
        assert fake.stats["rate_limited"]["minute"] == 0
        labels = {"destination": "xero", "credential_id": "cred-11", "window": "minute"}
        assert REGISTRY.get_sample_value("billsync_sink_provider_quota_remaining", labels) == 6
    finally:
        await sink.close()


async def test_a_429_honours_retry_after(fake: FakeXero, sink: Sink) -> None:
    fake.inject(status=429, retry_after=7)
    with pytest.raises(RateLimitedError) as caught:
        await sink.deliver([request(bill())])
    assert caught.value.retry_after == 7


async def test_a_revoked_token_is_an_authentication_error(fake: FakeXero) -> None:
    sink = Sink(fake, credential(fake, access_token=SecretStr("revoked")))
    try:
        with pytest.raises(AuthenticationError):
            await sink.deliver([request(bill())])
    finally:
        await sink.close()


async def test_custom_connection_gets_a_token_and_finds_its_tenant(fake: FakeXero) -> None:
    cred = XeroCredential(
        id="cred-custom", client_id="custom", client_secret=SecretStr("custom-secret")
    )
    sink = Sink(fake, cred)
    try:
        # Many at once before any token exists: one client-credentials fetch between them.
        first = await asyncio.gather(*(sink.deliver([request(bill(f"b{i}"))]) for i in range(8)))
        assert all(ok(o[0]).status is RunStatus.COMPLETE for o in first)
        ok((await sink.deliver([request(bill("bill-2"))]))[0])
    finally:
        await sink.close()
    assert len(fake.documents(OTHER)) == 9 and fake.documents(TENANT) == []
    assert fake.stats["token_grants"]["client_credentials"] == 1  # kept until near expiry
    assert sink.destination.custom_tokens.fetched == 1


async def test_split_sort_exclusions_and_enforced_mappings_reach_xero(fake: FakeXero) -> None:
    bands = [
        {"pricingBandId": "b1", "lowerLimit": "0", "bandQuantity": "100", "bandSubtotal": "10"},
        {"pricingBandId": "b2", "lowerLimit": "100", "bandQuantity": "50", "bandSubtotal": "2.5"},
    ]
    lines = [
        line(
            "usage",
            "USAGE",
            "12.50",
            quantity="150",
            productId="prod-api",
            usagePerPricingBand=bands,
        ),
        line("fee", "STANDING_CHARGE", "3.00"),
        line("min", "MINIMUM_SPEND", "1.00"),
    ]
    mine = {
        "id": "m1",
        "externalSystem": "Xero",
        "externalTable": "Item",
        "externalId": "API",
        "m3terEntity": "Product",
        "m3terId": "prod-api",
        "integrationConfigId": "cfg-x",
    }
    other = {**mine, "id": "m2", "externalId": "OTHER", "integrationConfigId": "cfg-other"}
    index = [ExternalMapping.model_validate(m) for m in (mine, other)]

    entity = {
        "useExternalMappingAccountCode": True,
        "enforceExternalMappingsForConfig": True,
        "sortLineItemsBy": "SUBTOTAL",
        "excludedLineItemTypes": ["MINIMUM_SPEND"],
    }
    cfg = make_config(
        "cfg-x", "XERO", entity=entity, dest={"splitUsageLineItems": "ITEM_PER_USAGE_BAND"}
    )
    sink = Sink(fake, credential(fake))
    try:
        ok((await sink.deliver([request(bill("bill-1", 1, *lines), cfg, mappings=index)]))[0])
    finally:
        await sink.close()
    (doc,) = fake.documents(TENANT)
    described = [(x["Description"], x.get("ItemCode"), x["LineAmount"]) for x in doc["LineItems"]]
    assert described == [
        ("fee", None, Decimal("3.00")),
        ("usage (from 0)", "API", Decimal("10.00")),
        ("usage (from 100)", "API", Decimal("2.50")),
    ]
    assert doc["Total"] == Decimal("15.50")
    assert_spec_accepted_everything(fake)
