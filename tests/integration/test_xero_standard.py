"""The batch-path standard suite through the runner on the real broker, for the Xero
destination against the local Xero (fakes/xero)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from pydantic import SecretStr

from fakes.xero import FakeXero
from services.xero_sink.destination import XeroDestination
from shared.contracts import Bill, IntegrationConfig, parse_config
from shared.credentials import Credential, XeroCredential
from shared.sinks.batching import BatchPolicy
from shared.sinks.limits import ProviderLimits, Scope, Window
from shared.sinks.standard_batch_tests import BatchCall, BatchHarness, BatchStandardTests
from shared.sinks.standard_tests import ExternalInvoice, Fault

pytestmark = pytest.mark.kafka

TENANTS = ("aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002")
CLIENT, SECRET = "xero-client", "xero-secret"
# The suite's bill ids name their configuration by prefix (Xero documents carry no
# configuration id, so the harness reads it back from the number).
SUITE_CONFIGS = {
    "bk": "cfg-backlog",
    "ok": "cfg-bad",
    "bad": "cfg-bad",
    "s5": "cfg-5xx",
    "au": "cfg-auth",
    "dup": "cfg-dup",
    "rg": "cfg-regen",
    "fin": "cfg-final",
    "dr": "cfg-drop",
}


def config_of(bill_id: str) -> str:
    if bill_id.startswith("mx-"):
        return bill_id[3:].rsplit("-", 1)[0]
    return SUITE_CONFIGS.get(bill_id.split("-", 1)[0], "?")


class XeroHarness(BatchHarness):
    def __init__(self, fake: FakeXero) -> None:
        assert fake.url
        self.fake = fake
        self.destination = XeroDestination(
            fake.url,
            token_url=f"{fake.url}/connect/token",
            policy=BatchPolicy(10, 0.3),
            limits=ProviderLimits((Window(600, 60.0),), concurrent=5, scope=Scope.TENANT),
        )
        token = SecretStr(fake.issue_tokens(CLIENT)["access_token"])
        self._credentials = [
            XeroCredential(
                id=f"cred-{i}",
                client_id=CLIENT,
                client_secret=SecretStr(SECRET),
                tenant_id=tenant,
                access_token=token,
            )
            for i, tenant in enumerate(TENANTS)
        ]

    def credential(self, index: int) -> Credential:
        return self._credentials[index]

    def rejected_credential(self) -> Credential:
        return self._credentials[0].model_copy(
            update={"id": "cred-revoked", "access_token": SecretStr("revoked")}
        )

    def config(self, config_id: str, credential_id: str, *, variant: int = 0) -> IntegrationConfig:
        return parse_config(
            {
                "id": config_id,
                "destination": "XERO",
                "integrationCredentialsId": credential_id,
                "destinationConfig": {"lineAmountTypes": "NoTax" if variant else "Exclusive"},
            }
        )

    def invalid_bill(self, bill: Bill) -> Bill:
        """A line description longer than Xero's 4,000 characters."""
        lines = [bill.line_items[0].model_copy(update={"description": "d" * 4001})]
        return bill.model_copy(update={"line_items": lines + bill.line_items[1:]})

    async def invoices_for(self, bill_id: str) -> list[ExternalInvoice]:
        return [
            ExternalInvoice(d["InvoiceID"], Decimal(d["Total"]))
            for tenant in TENANTS
            for d in self.fake.documents(tenant)
            if d["InvoiceNumber"] == bill_id and d["Status"] != "DELETED"
        ]

    async def mark_finalized(self, external_id: str) -> None:
        for tenant in TENANTS:
            if any(d["InvoiceID"] == external_id for d in self.fake.documents(tenant)):
                self.fake.set_status(tenant, external_id, "AUTHORISED")

    async def inject(self, fault: Fault) -> None:
        if fault is Fault.SERVER_ERROR:
            self.fake.inject(status=500, method="POST")
        elif fault is Fault.RATE_LIMITED:
            self.fake.inject(status=429, retry_after=0.2)
        else:
            self.fake.inject(action="drop_after_commit", method="POST")

    def calls(self) -> list[BatchCall]:
        out = []
        for req in self.fake.requests:
            collection = req["path"].rsplit("/", 1)[-1]
            numbers = tuple(
                str(e.get("InvoiceNumber") or e.get("CreditNoteNumber") or "")
                for e in req["body"][collection]
            )
            out.append(BatchCall(req["tenant"], numbers, tuple(config_of(n) for n in numbers)))
        return out


@pytest.fixture(scope="module")
async def fake_xero() -> AsyncIterator[FakeXero]:
    fake = FakeXero(clients={CLIENT: SECRET}, access_ttl=3600.0)
    for i, tenant in enumerate(TENANTS):
        fake.add_organisation(f"Standard {i}", tenant)
        fake.connect(CLIENT, tenant)
    await fake.start()
    yield fake
    await fake.stop()


class TestXeroBatchStandard(BatchStandardTests):
    @pytest.fixture
    def harness(self, fake_xero: FakeXero) -> BatchHarness:
        fake_xero.reset()
        return XeroHarness(fake_xero)
