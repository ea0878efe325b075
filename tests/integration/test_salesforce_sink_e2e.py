"""The Salesforce sink through the runner on a real broker, against the local Salesforce:
dispatch envelopes in, bill and line records out, one run per bill."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from fakes.salesforce import FakeSalesforce
from services.salesforce_sink.destination import SalesforceDestination
from shared.contracts import (
    Bill,
    BillStatus,
    EventType,
    IntegrationConfig,
    RunStatus,
)
from shared.contracts.runs import IntegrationRun
from shared.credentials import CredentialAdapter, generate_key
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from shared.sinks.options import SinkOptions
from shared.sinks.runner import SinkRunner
from tests.support.builders import account, bill, config, line
from tests.support.kafka import publish
from tests.support.services import running_router
from tests.support.sink_stack import SinkStack

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

APP, SECRET, USER = "billsync-e2e", "e2e-secret", "integration@example.com"
BILL, BILL_ID = "Billsync_Bill__c", "Billsync_Bill_Id__c"
LINE = "Billsync_Bill_Line__c"
FAST = SinkOptions(max_attempts=6, retry_base_delay=0.05, retry_max_delay=0.3, commit_interval=0.2)


@dataclass
class SalesforceStack(SinkStack):
    settings: Settings
    fake: FakeSalesforce
    url: str
    key: str
    options: SinkOptions = field(default_factory=lambda: FAST)
    credential_type: ClassVar[str] = "SALESFORCE"

    async def client_credentials(self, cred_id: str = "cred-sf") -> None:
        await self.publish_credentials(
            CredentialAdapter.validate_python(
                {
                    "id": cred_id,
                    "type": self.credential_type,
                    "grantType": "CLIENT_CREDENTIALS",
                    "clientId": APP,
                    "clientSecret": SECRET,
                    "loginUrl": self.url,
                }
            )
        )

    def runner(self, **option_overrides: Any) -> SinkRunner:
        options = self.options.model_copy(update=option_overrides)
        return SinkRunner(self.settings, SalesforceDestination(timeout=10.0), options, self.cipher)

    async def all_final_runs(self, count: int, timeout: float = 60) -> list[IntegrationRun]:
        """Every final run (a bill's second version has a run of its own)."""
        runs = await self.runs_where(lambda runs: len(_final(runs)) >= count, timeout)
        return _final(runs)

    async def final_runs(self, count: int, timeout: float = 60) -> dict[str, IntegrationRun]:
        """The final run of each bill, by bill id."""
        runs = await self.runs_where(
            lambda runs: len({r.entity_id for r in _final(runs)}) >= count, timeout
        )
        return {r.entity_id: r for r in _final(runs)}


def _final(runs: dict[str, IntegrationRun]) -> list[IntegrationRun]:
    return [r for r in runs.values() if r.status.is_final]


@contextlib.asynccontextmanager
async def salesforce_stack(settings: Settings) -> AsyncIterator[SalesforceStack]:
    key = generate_key()
    settings = settings.model_copy(update={"credentials_key": key})
    await ensure_topics(settings)
    fake = FakeSalesforce()
    fake.add_app(APP, client_secret=SECRET, run_as=USER)
    await fake.start()
    for i in range(1, 5):
        fake.seed("Account", Name=f"Account {i}", Billsync_Account_Id__c=f"acc-{i}")
    try:
        yield SalesforceStack(settings, fake, fake.url or "", key)
    finally:
        await fake.stop()


def sf_config(**dest: Any) -> IntegrationConfig:
    return config("cfg-sf", "SALESFORCE", integrationCredentialsId="cred-sf", dest=dest or None)


def bills(n: int, version: int = 1) -> list[Bill]:
    return [
        bill(
            f"bill-{i}",
            f"acc-{i % 4 + 1}",
            version=version,
            embed=account(f"acc-{i % 4 + 1}"),
            lines=[line(f"l{i}-1", "USAGE", "12.34"), line(f"l{i}-2", "STANDING_CHARGE", "5")],
        )
        for i in range(n)
    ]


async def test_bills_become_records_and_a_refused_record_fails_only_its_bill(
    settings: Settings,
) -> None:
    async with salesforce_stack(settings) as stack:
        stack.fake.reject(BILL, BILL_ID, "bill-3", "bill-3 is not welcome")
        await stack.client_credentials()
        await stack.configs(sf_config())
        async with stack.sink():
            await stack.envelopes(sf_config(), bills(6))
            runs = await stack.final_runs(6)
        assert {b: r.status for b, r in runs.items()} == {
            **{f"bill-{i}": RunStatus.COMPLETE for i in (0, 1, 2, 4, 5)},
            "bill-3": RunStatus.ERROR,
        }
        assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in (runs["bill-3"].error or "")
        _, events = await stack.results()
        assert [e.event_type for e in events] == [EventType.VALIDATION_ERROR]
        records = {r[BILL_ID]: r for r in stack.fake.records(BILL)}
        assert sorted(records) == ["bill-0", "bill-1", "bill-2", "bill-4", "bill-5"]
        assert runs["bill-0"].external_id == records["bill-0"]["Id"]
        assert len(stack.fake.records(LINE)) == 10


async def test_an_expired_session_refreshes_once_without_losing_a_bill(
    settings: Settings,
) -> None:
    async with salesforce_stack(settings) as stack:
        await stack.client_credentials()
        await stack.configs(sf_config())
        async with stack.sink():
            await stack.envelopes(sf_config(), bills(2))
            await stack.all_final_runs(2)
            stack.fake.expire_sessions()
            await stack.envelopes(sf_config(), bills(4, version=2))
            all_runs = await stack.all_final_runs(6)
        assert [r.status for r in all_runs] == [RunStatus.COMPLETE] * 6
        assert stack.fake.auth.grants == ["client_credentials", "client_credentials"]
        assert stack.fake.stats.unauthorized >= 1  # each call in flight then heard 401
        versions = {r[BILL_ID]: r["Bill_Version__c"] for r in stack.fake.records(BILL)}
        assert versions == {f"bill-{i}": "2" for i in range(4)}


async def test_the_page_settings_decide_which_records_salesforce_gets(
    settings: Settings,
) -> None:
    """Router and sink together: account ids, restricted account ids, the account filter,
    only send on approval, excluded line types and sorting, seen in the records."""
    async with salesforce_stack(settings) as stack:
        await stack.client_credentials()
        allow = config(
            "cfg-allow",
            "SALESFORCE",
            integrationCredentialsId="cred-sf",
            accountIds=["acc-1", "acc-2"],
            restrictedAccountIds=["acc-2"],
            entityConfig={"excludedLineItemTypes": ["STANDING_CHARGE"]},
        )
        filtered = config(
            "cfg-filter",
            "SALESFORCE",
            integrationCredentialsId="cred-sf",
            entityConfig={
                "accountFilter": "customFields.tier == gold",
                "onlySendBillOnApproval": True,
                "sortLineItemsBy": "SUBTOTAL",
            },
        )
        await stack.configs(allow, filtered)
        gold = account("acc-3", customFields={"tier": "gold"})
        items = [
            bill("b-acc1", "acc-1", embed=account("acc-1")),
            bill("b-acc2", "acc-2", embed=account("acc-2")),  # restricted
            bill("b-gold", "acc-3", embed=gold),  # pending: waits for approval
            bill("b-plain", "acc-4", embed=account("acc-4")),  # neither configuration
        ]
        topic = stack.settings.topics.name("bill_generated")
        await publish(
            stack.settings.kafka_bootstrap_servers,
            topic,
            [(b.id.encode(), b.to_bytes()) for b in items],
        )
        approved = items[2].model_copy(update={"status": BillStatus.APPROVED, "version": 2})
        async with running_router(stack.settings), stack.sink():
            await stack.final_runs(1)  # b-acc1
            await publish(
                stack.settings.kafka_bootstrap_servers,
                stack.settings.topics.name("bill_approved"),
                [(approved.id.encode(), approved.to_bytes())],
            )
            runs = await stack.final_runs(2)
        assert sorted(runs) == ["b-acc1", "b-gold"]
        every, _ = await stack.results()
        assert {r.entity_version for r in every.values() if r.entity_id == "b-gold"} == {2}
        assert all(r.status is RunStatus.COMPLETE for r in runs.values())
        assert sorted(r[BILL_ID] for r in stack.fake.records(BILL)) == ["b-acc1", "b-gold"]
        by_bill: dict[str, list[dict[str, Any]]] = {}
        bills_by_id = {r["Id"]: r[BILL_ID] for r in stack.fake.records(BILL)}
        for row in stack.fake.records(LINE):
            by_bill.setdefault(bills_by_id[row["Bill__c"]], []).append(row)
        # cfg-allow drops the standing charge; cfg-filter sorts by subtotal (5 before 10)
        assert [r["Line_Item_Type__c"] for r in by_bill["b-acc1"]] == ["USAGE"]
        gold_lines = sorted(by_bill["b-gold"], key=lambda r: int(r["Position__c"]))
        assert [r["Subtotal__c"] for r in gold_lines] == ["5.0000", "10.0000"]
        gold_bill = stack.fake.record(BILL, BILL_ID, "b-gold")
        assert gold_bill is not None and gold_bill["Status__c"] == "APPROVED"
