"""The standard destination suite, run for Stripe against the fake Stripe (one test also on
the broker, through the whole sink runner)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from fakes.stripe import FakeStripe
from services.stripe_sink.client import StripeApi
from services.stripe_sink.destination import StripeDestination
from services.stripe_sink.flow import STATES
from shared.contracts import IntegrationConfig, parse_config
from shared.credentials import Credential, StripeCredential
from shared.money import from_minor_units
from shared.sinks.standard_tests import (
    DestinationStandardTests,
    ExternalInvoice,
    Fault,
    StandardHarness,
)

API_KEY = "sk_test_123"
CUSTOMER = "cus_std"


class StripeHarness(StandardHarness):
    def __init__(self, fake: FakeStripe, account: str | None = None) -> None:
        assert fake.url
        self.fake = fake
        self.account_id = account
        self.destination = StripeDestination(api_base=fake.url)
        self.credential = StripeCredential(
            id="cred-std", api_key=SecretStr(API_KEY), connected_account_id=account
        )
        self.customer_id = CUSTOMER

    def config(self, *, editable: bool, **dest: Any) -> IntegrationConfig:
        return parse_config(
            {
                "id": "cfg-std",
                "name": "standard",
                "destination": "STRIPE_TEST",
                "integrationCredentialsId": "cred-std",
                "destinationConfig": {"leaveInvoicesAsDrafts": editable, **dest},
            }
        )

    def raw_invoices(self, bill_id: str) -> list[dict[str, Any]]:
        return [
            i
            for i in self.fake.invoices(self.account_id)
            if i["metadata"].get("billsync_bill_id") == bill_id
        ]

    async def invoices_for(self, bill_id: str) -> list[ExternalInvoice]:
        return [
            ExternalInvoice(
                i["id"], from_minor_units(i["total"], i["currency"]), STATES.get(i["status"])
            )
            for i in self.raw_invoices(bill_id)
        ]

    def api(self) -> StripeApi:
        assert self.fake.url
        return StripeApi(API_KEY, account=self.account_id, api_base=self.fake.url)

    async def mark_finalized(self, external_id: str) -> None:
        api = self.api()
        try:
            await api.finalize(external_id, f"operator-finalize-{external_id}")
        finally:
            await api.close()

    async def inject(self, fault: Fault) -> None:
        rule: dict[str, Any] = {"path_prefix": "/v1/invoices", "method": "POST", "count": 1}
        if fault is Fault.SERVER_ERROR:
            rule["status"] = 500
        elif fault is Fault.RATE_LIMITED:
            rule = {"path_prefix": "/v1/", "status": 429, "count": 1}
        else:
            rule["action"] = "drop_after_commit"
        self.fake.configure(faults={"rules": [rule]})

    def reject_credential(self) -> Credential:
        return StripeCredential(id="cred-revoked", api_key=SecretStr("sk_test_revoked"))

    def requests(self) -> int:
        return int(self.fake.stats["requests"])


@pytest.fixture(scope="module")
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe([API_KEY, "sk_live_456"], rate_limits={"enabled": False})
    await fake.start()
    yield fake
    await fake.stop()


def fresh(fake: FakeStripe) -> FakeStripe:
    fake.reset()
    fake.configure(faults={"rules": []}, search_lag_seconds=0)
    fake.seed_customer(CUSTOMER, currency="usd")
    return fake


class TestStripeStandard(DestinationStandardTests):
    @pytest.fixture
    def harness(self, fake_stripe: FakeStripe) -> StandardHarness:
        return StripeHarness(fresh(fake_stripe))
