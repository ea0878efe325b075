"""The Salesforce destination on the framework's batch and schedule paths, through the
runner on the real broker, against the local Salesforce: the batch-path standard suite,
EVENT bills batched together, and a SCHEDULE batch that survives a restart and goes out
exactly once with the latest version of each bill."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from fakes.salesforce import FakeSalesforce
from services.salesforce_sink.destination import SalesforceDestination
from shared.contracts import Bill, IntegrationConfig, RunStatus
from shared.credentials import Credential
from shared.credentials.models import SalesforceCredential
from shared.settings import Settings
from shared.sinks.batching import BatchPolicy
from shared.sinks.standard_batch_tests import (
    BatchCall,
    BatchHarness,
    BatchStandardTests,
    batch_stack,
    envelope,
)
from shared.sinks.standard_tests import standard_bill
from tests.support.builders import config as make_config
from tests.support.kafka import read_topic
from tests.support.salesforce import BILL, BILL_ID, LINE, SalesforceRecords

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

USER = "integration@example.com"


class SalesforceBatchHarness(SalesforceRecords, BatchHarness):
    """Two connected apps (two credentials) on the local Salesforce; "finalized" is an
    approval lock on the bill record."""

    def __init__(self, fake: FakeSalesforce, policy: BatchPolicy | None = None) -> None:
        assert fake.url is not None
        self.fake = fake
        self.destination = SalesforceDestination(
            timeout=10.0, policy=policy or BatchPolicy(max_size=10, max_linger=0.3)
        )
        for index in (0, 1):
            fake.add_app(f"app-{index}", client_secret=f"secret-{index}", run_as=USER)
        if fake.record("Account", "Billsync_Account_Id__c", "acc-standard") is None:
            fake.seed("Account", Name="Batch Tests Inc", Billsync_Account_Id__c="acc-standard")

    def _credential(self, cred_id: str, app: str, secret: str) -> SalesforceCredential:
        return SalesforceCredential.model_validate(
            {
                "id": cred_id,
                "grantType": "CLIENT_CREDENTIALS",
                "clientId": app,
                "clientSecret": secret,
                "loginUrl": self.fake.url,
            }
        )

    def credential(self, index: int) -> Credential:
        return self._credential(f"cred-sf-{index}", f"app-{index}", f"secret-{index}")

    def rejected_credential(self) -> Credential:
        return self._credential("cred-sf-rejected", "app-0", "wrong")

    def config(self, config_id: str, credential_id: str, *, variant: int = 0) -> IntegrationConfig:
        dest: dict[str, Any] = {"lineFieldMapping": {"unit": None}} if variant else {}
        return make_config(
            config_id, "SALESFORCE", integrationCredentialsId=credential_id, dest=dest
        )

    def calls(self) -> list[BatchCall]:
        """One BatchCall per API call that upserted bills. The suite names its bills after
        their configuration (`mx-<config>-<n>`; `bk-<n>` for cfg-backlog)."""
        by_call: dict[int, tuple[str, list[str]]] = {}
        for entry in self.fake.stats.calls:
            if entry.get("object") == BILL:
                _, keys = by_call.setdefault(entry["call"], (entry["scope"], []))
                keys.extend(entry["keys"])
        return [
            BatchCall(scope, tuple(keys), tuple(_config_of(k) for k in keys))
            for _, (scope, keys) in sorted(by_call.items())
        ]

    def invalid_bill(self, bill: Bill) -> Bill:
        return bill.model_copy(update={"bill_total": Decimal("1000000000000000")})


def _config_of(bill_id: str) -> str:
    if bill_id.startswith("mx-"):
        return bill_id[3:].rsplit("-", 1)[0]
    return "cfg-backlog" if bill_id.startswith("bk-") else ""


@pytest.fixture(scope="module")
async def fake_salesforce() -> AsyncIterator[FakeSalesforce]:
    fake = FakeSalesforce()
    await fake.start()
    yield fake
    await fake.stop()


class TestSalesforceBatchStandard(BatchStandardTests):
    @pytest.fixture
    def harness(self, fake_salesforce: FakeSalesforce) -> BatchHarness:
        fake_salesforce.reset()
        return SalesforceBatchHarness(fake_salesforce)


# -- EVENT and SCHEDULE -------------------------------------------------------------------


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSalesforce]:
    fake = FakeSalesforce()
    await fake.start()
    yield fake
    await fake.stop()


async def test_event_bills_waiting_together_go_in_one_call(
    settings: Settings, fake: FakeSalesforce
) -> None:
    harness = SalesforceBatchHarness(fake, BatchPolicy(max_size=200, max_linger=1.0))
    async with batch_stack(settings, harness) as stack:
        config = harness.config("cfg-event", harness.credential(0).id)
        bills = [standard_bill(f"ev-{i}") for i in range(12)]
        await stack.send(*(envelope(config, b) for b in bills))
        async with stack.sink():
            runs = await stack.final_runs([b.id for b in bills])
        assert {r.status for r in runs.values()} == {RunStatus.COMPLETE}
        # 12 bills and 24 lines: far fewer calls than bills (what waited went together)
        assert fake.stats.api_calls < len(bills)
        assert len(fake.records(LINE)) == 24


async def test_a_schedule_batch_survives_a_restart_and_goes_out_exactly_once(
    settings: Settings, fake: FakeSalesforce, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = SalesforceBatchHarness(fake)
    async with batch_stack(settings, harness) as stack:
        hourly = make_config(
            "cfg-sched",
            "SALESFORCE",
            integrationCredentialsId=harness.credential(0).id,
            dest={"triggerType": "SCHEDULE"},
        )
        v1 = envelope(hourly, standard_bill("sc-1", 1))
        other = envelope(hourly, standard_bill("sc-2", 1))
        v2 = envelope(hourly, standard_bill("sc-1", 2, amounts=("200.00", "7.00")))
        await stack.send(v1, other, v2)
        async with stack.sink():
            await until(
                lambda: len([r for r in stack.runs.values() if r.status is RunStatus.WAITING]) == 3
            )
        assert fake.stats.api_calls == 0  # collected for the hour, nothing sent

        # Restarted where the boundary comes at once: the collection was kept on Kafka.
        monkeypatch.setenv("BILLSYNC_SINK_SCHEDULE_INTERVAL", "1")
        async with stack.sink():
            await until(
                lambda: (
                    any(
                        r.status is RunStatus.COMPLETE and r.entity_version == 2
                        for r in stack.runs.values()
                    )
                    and any(
                        r.status is RunStatus.COMPLETE and r.entity_id == "sc-2"
                        for r in stack.runs.values()
                    )
                )
            )
        (call,) = harness.calls()  # one batch, one Composite call
        assert sorted(call.bill_ids) == ["sc-1", "sc-2"]
        assert [i.total for i in await harness.invoices_for("sc-1")] == [Decimal("207.00")]
        bill = fake.record(BILL, BILL_ID, "sc-1")
        assert bill is not None and bill["Bill_Version__c"] == "2"
        schedule = await read_topic(
            settings.kafka_bootstrap_servers, stack.settings.topics.name("sink_schedule")
        )
        live: dict[bytes | None, bytes | None] = {}
        for record in schedule:
            live[record.key] = record.value
        assert all(v is None for v in live.values())  # delivered records deleted

        # Another restart: nothing goes out twice.
        calls = fake.stats.api_calls
        async with stack.sink() as runner:
            await until(lambda: runner.schedule.store.table.ready.is_set())
            assert len(runner.schedule.store.pending) == 0
        assert fake.stats.api_calls == calls
