"""The Paddle destination against the local Paddle (no Kafka): calls per bill, keys per
environment, the look-up after a lost answer, Paddle's errors as run text, the one
process-wide budget."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from fakes.paddle import FakePaddle
from services.paddle_sink.destination import PaddleDestination, paddle_limits
from services.paddle_sink.main import parse_rate_limit
from shared.contracts import (
    Account,
    Bill,
    Destination,
    DispatchEnvelope,
    ExternalMapping,
    ExternalSystem,
    RunStatus,
    parse_config,
)
from shared.credentials import PaddleCredential
from shared.sinks.customers import bill_mappings
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.errors import (
    AuthenticationError,
    FatalBillError,
    MissingAccountMappingError,
    RateLimitedError,
)
from shared.sinks.invoice_map import InvoiceMapRecord, InvoiceState
from shared.sinks.limits import QuotaLimiter, Scope, Window
from shared.sinks.policy import DeliveryPolicy
from shared.sinks.ratelimit import AdaptiveRateLimiter, RateSpec
from shared.sinks.standard_tests import MemoryPolicyState, generated_envelope
from tests.support.builders import bill, line

KEY = "pdl_sdbx_apikey_unit"
LIVE_KEY = "pdl_live_apikey_unit"


def rows_for(account_id: str, ids: dict[str, Any]) -> list[ExternalMapping]:
    out = []
    for table, key in (("Customer", "customer_id"), ("Address", "address_id")):
        if ids.get(key):
            out.append(
                ExternalMapping.model_validate(
                    {
                        "id": f"m-{account_id}-{table}",
                        "externalSystem": "Paddle",
                        "externalTable": table,
                        "externalId": ids[key],
                        "m3terEntity": "Account",
                        "m3terId": account_id,
                    }
                )
            )
    return out


class Setup:
    def __init__(self, fake: FakePaddle) -> None:
        self.fake = fake
        self.ids = fake.seed_customer(name="Acme")
        self.rows = rows_for("acc-1", self.ids)
        assert fake.url
        self.destination = PaddleDestination(api_base=fake.url)
        self.credential = PaddleCredential(id="cred-1", api_key=SecretStr(KEY))

    def lookup(self, system: ExternalSystem, m3ter_id: str) -> Sequence[ExternalMapping]:
        return [m for m in self.rows if m.m3ter_id == m3ter_id]

    def envelope(self, b: Bill, destination: str = "PADDLE_SANDBOX", **dest: Any) -> Any:
        config = parse_config(
            {
                "id": "cfg-p",
                "destination": destination,
                "integrationCredentialsId": "cred-1",
                "entityConfig": {"useExternalMappingAccountCode": True},
                "destinationConfig": dest,
            }
        )
        owner = Account(id=b.account_id, account_name="Acme", currency="USD")
        return generated_envelope(config, b, owner)

    async def deliver(
        self,
        envelope: DispatchEnvelope,
        existing: DeliveryResult | None = None,
        recovering: bool = False,
        credential: PaddleCredential | None = None,
        limiter: QuotaLimiter | None = None,
    ) -> tuple[DeliveryResult, ProviderCalls]:
        dest = self.destination
        config = envelope.integration_config
        record = None
        if existing is not None:
            record = InvoiceMapRecord(
                integration_config_id=config.id,
                bill_id=envelope.bill.id,
                bill_version=envelope.bill.version - 1,
                state=existing.state,
                external_id=existing.external_id,
                updated_at=datetime.now(UTC),
            )
        client = dest.make_client(config.destination, credential or self.credential)
        calls = ProviderCalls(
            "paddle", limiter or AdaptiveRateLimiter(RateSpec(None)), dest.classify
        )
        mappings = bill_mappings(envelope.bill, config, ExternalSystem.PADDLE, self.lookup)
        request = DeliveryRequest(
            envelope, config, "unused", record, recovering, 1, "run-1", mappings
        )
        try:
            return await dest.deliver(request, client, calls), calls
        finally:
            await dest.close_client(client)


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    fake = FakePaddle([KEY, LIVE_KEY], rate_limits={"enabled": False})
    await fake.start()
    yield Setup(fake)
    await fake.stop()


def sample_bill(version: int = 1, **fields: Any) -> Bill:
    values: dict[str, Any] = {
        "bill_date": date(2026, 11, 1),
        "due_date": date(2026, 11, 15),
        "purchase_order_number": "PO-9",
        **fields,
    }
    lines = [line("li-1", subtotal="12.34", quantity="2"), line("li-2", subtotal="5")]
    return bill(version=version, lines=lines, **values)


async def test_a_new_bill_is_one_call_and_one_manual_draft(setup: Setup) -> None:
    result, calls = await setup.deliver(setup.envelope(sample_bill()))
    assert calls.count == 1
    assert result.status is RunStatus.COMPLETE and result.state is InvoiceState.DRAFT
    [txn] = setup.fake.transactions()
    assert result.external_id == txn["id"]
    assert result.url and txn["id"] in result.url
    assert txn["collection_mode"] == "manual" and txn["status"] == "ready"
    assert txn["billing_details"]["payment_terms"] == {"interval": "day", "frequency": 14}
    assert txn["billing_details"]["purchase_order_number"] == "PO-9"
    assert txn["customer_id"] == setup.ids["customer_id"]
    assert txn["address_id"] == setup.ids["address_id"]
    assert txn["custom_data"]["billsync_bill_id"] == "bill-1"
    assert txn["details"]["totals"]["grand_total"] == "1734"
    assert setup.fake.stats["paddle_versions"] == {"1": 1}


@pytest.mark.parametrize(("destination", "key"), [("PADDLE", KEY), ("PADDLE_SANDBOX", LIVE_KEY)])
async def test_a_key_of_the_other_environment_is_refused_before_any_call(
    setup: Setup, destination: str, key: str
) -> None:
    wrong = PaddleCredential(id="cred-x", api_key=SecretStr(key))
    with pytest.raises(AuthenticationError, match="attach a") as caught:
        await setup.deliver(setup.envelope(sample_bill(), destination), credential=wrong)
    assert key not in caught.value.message
    assert setup.fake.stats["requests"] == 0


async def test_missing_mapping_is_missing_account_mapping_with_no_call(setup: Setup) -> None:
    setup.rows = [r for r in setup.rows if r.external_table != "Address"]
    with pytest.raises(MissingAccountMappingError, match="Address"):
        await setup.deliver(setup.envelope(sample_bill()))
    setup.rows = []
    with pytest.raises(MissingAccountMappingError, match="Customer"):
        await setup.deliver(setup.envelope(sample_bill()))
    assert setup.fake.stats["requests"] == 0


async def test_regenerated_bill_patches_and_billed_is_never_touched(setup: Setup) -> None:
    first, _ = await setup.deliver(setup.envelope(sample_bill()))
    v2 = sample_bill(2, purchase_order_number="PO-10")
    second, calls = await setup.deliver(setup.envelope(v2), existing=first)
    assert calls.count == 2  # read, then patch
    assert second.external_id == first.external_id
    assert first.external_id is not None
    txn = setup.fake.transaction(first.external_id)
    assert txn["billing_details"]["purchase_order_number"] == "PO-10"
    assert txn["custom_data"]["billsync_bill_version"] == "2"
    setup.fake.set_status(first.external_id, "billed")
    third, calls = await setup.deliver(setup.envelope(sample_bill(3)), existing=second)
    assert third.status is RunStatus.INVOICE_ALREADY_PAID and calls.count == 1
    assert third.message and "billed" in third.message
    assert setup.fake.transaction(first.external_id)["custom_data"]["billsync_bill_version"] == "2"


async def test_after_a_lost_answer_the_transaction_is_found_beyond_the_first_page(
    setup: Setup,
) -> None:
    setup.fake.configure(
        faults={"rules": [{"path_prefix": "/transactions", "action": "drop_after_commit"}]}
    )
    envelope = setup.envelope(sample_bill())
    with pytest.raises(Exception):  # noqa: B017 (the framework's RetriableError)
        await setup.deliver(envelope)
    for i in range(40):  # newer transactions of the same customer push it to page 2
        await setup.deliver(setup.envelope(sample_bill(id=f"other-{i}")))
    result, calls = await setup.deliver(envelope, recovering=True)
    mine = [
        t for t in setup.fake.transactions() if t["custom_data"]["billsync_bill_id"] == "bill-1"
    ]
    assert [t["id"] for t in mine] == [result.external_id]
    assert calls.count == 2  # two pages of the customer's transactions, no write
    assert setup.fake.stats["by_endpoint"]["POST /transactions"] == 41


async def test_paddles_error_becomes_the_run_text(setup: Setup) -> None:
    stranger = setup.fake.seed_customer(name="Other")
    setup.rows = rows_for("acc-1", {**setup.ids, "address_id": stranger["address_id"]})
    with pytest.raises(FatalBillError) as caught:
        await setup.deliver(setup.envelope(sample_bill()))
    message = caught.value.message
    assert message.startswith("Paddle 400 not_found:")
    assert "address_id:" in message and "[request " in message


def test_one_budget_for_every_credential_of_the_process(setup: Setup) -> None:
    assert setup.fake.url
    dest = PaddleDestination(api_base=setup.fake.url, limits=paddle_limits(per_minute=4))
    other = PaddleCredential(id="cred-2", api_key=SecretStr(LIVE_KEY))
    mine = dest.provider_limits(Destination.PADDLE_SANDBOX, setup.credential)
    theirs = dest.provider_limits(Destination.PADDLE, other)
    assert mine == theirs and mine is not None
    assert mine.scope is Scope.PROCESS and mine.windows == (Window(4, 60.0),)
    # The framework's policy gives both credentials (both environments) one limiter.
    policy = DeliveryPolicy(dest, MemoryPolicyState())
    sandbox = setup.envelope(sample_bill()).integration_config
    live = setup.envelope(sample_bill(), "PADDLE").integration_config
    assert policy._limiter_for(sandbox, setup.credential) is policy._limiter_for(live, other)


async def test_a_429_blocks_the_process_budget_for_retry_after(setup: Setup) -> None:
    setup.fake.configure(rate_limits={"enabled": True, "per_window": 1})
    limits = setup.destination.provider_limits(Destination.PADDLE_SANDBOX, setup.credential)
    assert limits is not None
    limiter = QuotaLimiter(limits)
    await setup.deliver(setup.envelope(sample_bill()), limiter=limiter)
    with pytest.raises(RateLimitedError) as caught:
        await setup.deliver(setup.envelope(sample_bill(id="bill-2")), limiter=limiter)
    assert caught.value.retry_after == 60
    assert limiter.state.blocked_until > time.monotonic() + 55


def test_rate_limit_setting() -> None:
    assert parse_rate_limit("240/60") == (240, 60.0)
    assert parse_rate_limit("120") == (120, 60.0)
    for bad in ("x/60", "0/60", "10/0"):
        with pytest.raises(SystemExit, match="BILLSYNC_PADDLE_RATE_LIMIT"):
            parse_rate_limit(bad)
