"""The standard destination suite, run for Paddle against the local Paddle (one test also on
the broker, through the whole sink runner)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from fakes.paddle import FakePaddle
from services.paddle_sink.client import PaddleApi
from services.paddle_sink.destination import STATES, PaddleDestination
from shared.contracts import (
    Bill,
    Destination,
    ExternalMapping,
    IntegrationConfig,
    parse_config,
)
from shared.credentials import Credential, PaddleCredential
from shared.money import from_minor_units
from shared.sinks.standard_tests import (
    DestinationStandardTests,
    ExternalInvoice,
    Fault,
    StandardHarness,
    line,
)
from tests.support.paddle_stack import account_mappings

API_KEY = "pdl_sdbx_apikey_standard"
ACCOUNT = "acc-standard"


class PaddleHarness(StandardHarness):
    def __init__(self, fake: FakePaddle) -> None:
        assert fake.url
        self.fake = fake
        ids = fake.seed_customer(name="Standard Tests Inc")
        self.rows = account_mappings(ACCOUNT, ids)
        self.destination = PaddleDestination(api_base=fake.url)
        self.credential = PaddleCredential(id="cred-std", api_key=SecretStr(API_KEY))
        self.customer_id = ids["customer_id"]

    def external_mappings(self) -> list[ExternalMapping]:
        return list(self.rows)

    def config(self, *, editable: bool, **dest: Any) -> IntegrationConfig:
        # Paddle transactions are always left as drafts (`editable` changes nothing).
        return parse_config(
            {
                "id": "cfg-std",
                "name": "standard",
                "destination": "PADDLE_SANDBOX",
                "integrationCredentialsId": "cred-std",
                "entityConfig": {"useExternalMappingAccountCode": True},
                "destinationConfig": dest,
            }
        )

    async def invoices_for(self, bill_id: str) -> list[ExternalInvoice]:
        return [
            ExternalInvoice(
                t["id"],
                from_minor_units(int(t["details"]["totals"]["grand_total"]), t["currency_code"]),
                STATES.get(t["status"]),
            )
            for t in self.fake.transactions()
            if (t["custom_data"] or {}).get("billsync_bill_id") == bill_id
        ]

    def api(self) -> PaddleApi:
        assert self.fake.url
        return PaddleApi(API_KEY, self.fake.url, Destination.PADDLE_SANDBOX)

    async def mark_finalized(self, external_id: str) -> None:
        api = self.api()
        try:
            await api.update_transaction(external_id, {"status": "billed"})
        finally:
            await api.close()

    async def inject(self, fault: Fault) -> None:
        rule: dict[str, Any] = {"path_prefix": "/transactions", "method": "POST", "count": 1}
        if fault is Fault.SERVER_ERROR:
            rule["status"] = 500
        elif fault is Fault.RATE_LIMITED:
            rule = {"path_prefix": "/", "status": 429, "count": 1}
        else:
            rule["action"] = "drop_after_commit"
        self.fake.configure(faults={"rules": [rule]})

    def reject_credential(self) -> Credential:
        return PaddleCredential(id="cred-revoked", api_key=SecretStr("pdl_sdbx_apikey_revoked"))

    def requests(self) -> int:
        return int(self.fake.stats["requests"])

    def invalid_bill(self, bill: Bill) -> Bill:
        """Paddle's own constraint: no negative line items."""
        credit = line("li-credit", Decimal("-10.00"))
        return bill.model_copy(update={"line_items": [*bill.line_items, credit]})


@pytest.fixture(scope="module")
async def fake_paddle() -> AsyncIterator[FakePaddle]:
    fake = FakePaddle([API_KEY], rate_limits={"enabled": False})
    await fake.start()
    yield fake
    await fake.stop()


class TestPaddleStandard(DestinationStandardTests):
    @pytest.fixture
    def harness(self, fake_paddle: FakePaddle) -> StandardHarness:
        fake_paddle.reset()
        fake_paddle.configure(faults={"rules": []})
        return PaddleHarness(fake_paddle)
