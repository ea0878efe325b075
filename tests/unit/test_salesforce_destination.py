"""SalesforceDestination against the local Salesforce (no Kafka): the standard destination
suite, every setting with assertions on the records, the OAuth flows, sessions, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from fakes.salesforce import FakeSalesforce
from services.control.verifiers import verifier_for
from services.salesforce_sink.client import (
    ApiUsage,
    SalesforceApi,
    jwt_audience,
    parse_limit_info,
    usage_pause,
)
from services.salesforce_sink.destination import SalesforceDestination
from shared.contracts import (
    Account,
    Bill,
    Destination,
    IntegrationConfig,
    LineItem,
    RunStatus,
    SalesforceIntegrationConfig,
)
from shared.contracts.config import SALESFORCE_LINE_PROPERTIES
from shared.credentials import Credential
from shared.credentials.models import SalesforceCredential
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.errors import (
    AuthenticationError,
    FatalBillError,
    RateLimitedError,
    SinkError,
)
from shared.sinks.ratelimit import AdaptiveRateLimiter, RateSpec
from shared.sinks.standard_tests import (
    DestinationStandardTests,
    StandardHarness,
    generated_envelope,
)
from tests.support.builders import config as make_config
from tests.support.salesforce import BILL, BILL_ID, LINE, LINE_ID, SalesforceRecords, rsa_keypair

pytestmark = pytest.mark.timeout(60)

APP, SECRET, USER = "billsync-app", "app-secret", "integration@example.com"


PRIVATE, PUBLIC = rsa_keypair()


def credential(login_url: str, **fields: Any) -> SalesforceCredential:
    data: dict[str, Any] = {
        "id": "cred-sf",
        "grantType": "CLIENT_CREDENTIALS",
        "clientId": APP,
        "clientSecret": SECRET,
        "loginUrl": login_url,
    }
    data.update(fields)
    return SalesforceCredential.model_validate(data)


class SalesforceHarness(SalesforceRecords, StandardHarness):
    """The standard suite's view of the local Salesforce. "Finalized" is an approval lock
    on the bill record (its lines, master-detail children, are locked with it)."""

    currency = "USD"

    def __init__(self, fake: FakeSalesforce) -> None:
        assert fake.url is not None
        self.fake = fake
        self.destination = SalesforceDestination(timeout=10.0)
        self.credential = credential(fake.url)
        # The Salesforce Account: found by its billsync external id, or (configurations that
        # use external mappings) by this id, which the suite's mapping of acc-standard holds.
        self.customer_id = fake.seed(
            "Account", Name="Standard Tests Inc", Billsync_Account_Id__c="acc-standard"
        )

    def config(self, *, editable: bool) -> IntegrationConfig:
        return make_config("cfg-sf", "SALESFORCE", integrationCredentialsId="cred-sf")

    def reject_credential(self) -> Credential:
        assert self.fake.url is not None
        return credential(self.fake.url, clientSecret="wrong")

    def requests(self) -> int:
        return self.fake.stats.api_calls

    def invalid_bill(self, bill: Bill) -> Bill:
        huge = Decimal("1000000000000000")  # 16 digits: beyond a Number(18, 4) field
        return bill.model_copy(update={"bill_total": huge})


@pytest.fixture
async def fake() -> AsyncIterator[FakeSalesforce]:
    fake = FakeSalesforce()
    fake.add_app(APP, client_secret=SECRET, public_key_pem=PUBLIC, run_as=USER)
    await fake.start()
    yield fake
    await fake.stop()


class TestSalesforceStandard(DestinationStandardTests):
    @pytest.fixture
    def harness(self, fake: FakeSalesforce) -> StandardHarness:
        return SalesforceHarness(fake)


# -- helpers for the tests below ----------------------------------------------------------


class Env:
    def __init__(self, fake: FakeSalesforce, **dest: Any) -> None:
        assert fake.url is not None
        self.fake = fake
        self.destination = SalesforceDestination(timeout=10.0)
        self.credential = credential(fake.url)
        self.client = SalesforceApi(self.credential)
        self.calls = ProviderCalls(
            "salesforce", AdaptiveRateLimiter(RateSpec(None)), self.destination.classify
        )
        self.dest = dest
        self.entity: dict[str, Any] = {}

    def config(self, **entity: Any) -> SalesforceIntegrationConfig:
        cfg = make_config("cfg-sf", "SALESFORCE", entity=entity or self.entity, dest=self.dest)
        assert isinstance(cfg, SalesforceIntegrationConfig)
        return cfg

    def request(self, bill: Bill, customer: str | None = None, **entity: Any) -> DeliveryRequest:
        config = self.config(**entity)
        owner = Account(id=bill.account_id, account_name="A", currency="USD")
        envelope = generated_envelope(config, bill, owner)
        return DeliveryRequest(
            envelope, config, customer or bill.account_id, None, False, 1, f"run-{bill.id}"
        )

    async def batch(self, *requests: DeliveryRequest) -> list[DeliveryResult | SinkError]:
        return await self.destination.deliver_batch(list(requests), self.client, self.calls)

    async def close(self) -> None:
        await self.client.close()


@pytest.fixture
async def env(fake: FakeSalesforce) -> AsyncIterator[Env]:
    fake.seed("Account", Name="Acme", Billsync_Account_Id__c="acc-1")
    env = Env(fake)
    yield env
    await env.close()


def sf_line(ident: str, subtotal: str, kind: str = "USAGE", **fields: Any) -> LineItem:
    return LineItem.model_validate(
        {
            "id": ident,
            "lineItemType": kind,
            "quantity": "2",
            "subtotal": subtotal,
            "description": f"line {ident}",
            **fields,
        }
    )


def sf_bill(bill_id: str, *lines: LineItem, version: int = 1, account: str = "acc-1") -> Bill:
    items = list(lines) or [sf_line("l1", "10.00"), sf_line("l2", "5.50", "STANDING_CHARGE")]
    return Bill(
        id=bill_id,
        version=version,
        account_id=account,
        currency="USD",
        bill_total=sum((i.subtotal for i in items), Decimal(0)),
        line_items=items,
    )


def lines_of(fake: FakeSalesforce, bill_id: str) -> list[dict[str, Any]]:
    bill = fake.record(BILL, BILL_ID, bill_id)
    assert bill is not None
    rows = [r for r in fake.records(LINE) if r.get("Bill__c") == bill["Id"]]
    return sorted(rows, key=lambda r: int(r["Position__c"]))


# -- delivery -----------------------------------------------------------------------------


async def test_bill_and_lines_are_records_parented_to_the_account(env: Env) -> None:
    (result,) = await env.batch(env.request(sf_bill("b1")))
    assert isinstance(result, DeliveryResult) and result.status is RunStatus.COMPLETE
    bill = env.fake.record(BILL, BILL_ID, "b1")
    account = env.fake.record("Account", "Billsync_Account_Id__c", "acc-1")
    assert bill is not None and account is not None
    assert result.external_id == bill["Id"] and bill["Account__c"] == account["Id"]
    assert result.url and result.url.endswith(f"/lightning/r/{BILL}/{bill['Id']}/view")
    assert bill["Bill_Total__c"] == "15.5000"
    rows = lines_of(env.fake, "b1")
    assert [(r[LINE_ID], r["Subtotal__c"]) for r in rows] == [
        ("b1:l1", "10.0000"),
        ("b1:l2", "5.5000"),
    ]
    assert sorted(result.external_item_ids) == sorted(r["Id"] for r in rows)
    assert env.fake.stats.api_calls == 1  # bill, lines and the read-back: one Composite


async def test_a_regenerated_bill_updates_records_and_removes_vanished_lines(env: Env) -> None:
    await env.batch(env.request(sf_bill("b1")))
    first = env.fake.record(BILL, BILL_ID, "b1")
    v2 = sf_bill("b1", sf_line("l2", "7.00"), sf_line("l3", "1.00"), version=2)
    (result,) = await env.batch(env.request(v2))
    assert isinstance(result, DeliveryResult)
    assert first is not None and result.external_id == first["Id"]
    assert [(r[LINE_ID], r["Subtotal__c"]) for r in lines_of(env.fake, "b1")] == [
        ("b1:l2", "7.0000"),
        ("b1:l3", "1.0000"),
    ]
    assert len(env.fake.records(BILL)) == 1


async def test_a_record_level_failure_fails_only_its_bill(env: Env) -> None:
    env.fake.reject(LINE, "Description__c", "line bad", "Descriptions may not say bad")
    good, bad, other = await env.batch(
        env.request(sf_bill("b1")),
        env.request(sf_bill("b2", sf_line("bad", "1.00"))),
        env.request(sf_bill("b3")),
    )
    assert isinstance(good, DeliveryResult) and isinstance(other, DeliveryResult)
    assert isinstance(bad, FatalBillError)
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in bad.message
    assert "b2:bad" in bad.message and "Description__c" in bad.message
    assert {r[BILL_ID] for r in env.fake.records(BILL)} == {"b1", "b2", "b3"}
    assert env.fake.stats.api_calls == 1


async def test_a_batch_too_large_for_one_composite_still_maps_every_result(env: Env) -> None:
    env.fake.reject(BILL, "Billsync_Bill_Id__c", "b137", "no")
    bills = [sf_bill(f"b{i}", *(sf_line(f"l{j}", "1") for j in range(4))) for i in range(300)]
    results = await env.batch(*(env.request(b) for b in bills))
    failed = [i for i, r in enumerate(results) if isinstance(r, SinkError)]
    assert failed == [137]
    assert len(env.fake.records(LINE)) == 299 * 4 + 4 * 0  # b137's lines have no parent
    # 1,500 records: 3 Composite calls (1,000 records at most in each)
    assert env.fake.stats.api_calls <= 3


async def test_each_member_is_planned_with_its_own_entity_settings(env: Env) -> None:
    """Two configurations with the same destination settings share a batch; their entity
    settings (here excluded line types) still apply bill by bill."""
    kinds = (sf_line("u", "1.00"), sf_line("m", "2.00", "MINIMUM_SPEND"))
    plain = env.request(sf_bill("b1", *kinds))
    excluding = env.request(sf_bill("b2", *kinds), excludedLineItemTypes=["MINIMUM_SPEND"])
    await env.batch(plain, excluding)
    assert [r[LINE_ID] for r in lines_of(env.fake, "b1")] == ["b1:u", "b1:m"]
    assert [r[LINE_ID] for r in lines_of(env.fake, "b2")] == ["b2:u"]


async def test_the_same_bill_twice_in_a_batch_is_written_once(env: Env) -> None:
    a, b = await env.batch(env.request(sf_bill("b1")), env.request(sf_bill("b1", version=2)))
    assert isinstance(a, DeliveryResult) and isinstance(b, DeliveryResult)
    assert a.external_id == b.external_id
    bill = env.fake.record(BILL, BILL_ID, "b1")
    assert bill is not None and bill["Bill_Version__c"] == "2"


async def test_objects_and_field_mapping_from_the_configuration(fake: FakeSalesforce) -> None:
    from fakes.salesforce import FieldDef, ObjectDef

    fake.store.objects["Invoice__c"] = ObjectDef(
        "Invoice__c",
        "a0X",
        {
            "Id": FieldDef("Id", "id"),
            "Name": FieldDef("Name", "string", length=80, required=True),
            "M3ter_Id__c": FieldDef("M3ter_Id__c", "string", length=80, external_id=True),
            "Amount__c": FieldDef("Amount__c", "currency", precision=18, scale=2),
        },
    )
    fake.store.objects["Invoice_Line__c"] = ObjectDef(
        "Invoice_Line__c",
        "a0Y",
        {
            "Id": FieldDef("Id", "id"),
            "Name": FieldDef("Name", "string", length=80, required=True),
            "Line_Key__c": FieldDef("Line_Key__c", "string", length=255, external_id=True),
            "Invoice__c": FieldDef(
                "Invoice__c",
                "reference",
                required=True,
                reference_to=("Invoice__c",),
                relationship_name="Invoice__r",
            ),
            "Total__c": FieldDef("Total__c", "currency", precision=18, scale=2),
        },
    )
    only = {p: None for p in ("name", "version", "accountCode", "billDate", "dueDate")}
    bill_map: dict[str, str | None] = {
        **only,
        **{
            p: None
            for p in (
                "startDate",
                "endDate",
                "currency",
                "status",
                "purchaseOrderNumber",
                "sequentialInvoiceNumber",
                "externalInvoiceReference",
                "billingFrequency",
                "lastCalculatedDate",
            )
        },
        "name": "Name",
        "billTotal": "Amount__c",
    }
    line_keep = {"name": "Name", "subtotal": "Total__c"}
    line_map: dict[str, str | None] = {p: line_keep.get(p) for p in SALESFORCE_LINE_PROPERTIES}
    env = Env(
        fake,
        billObject="Invoice__c",
        billExternalIdField="M3ter_Id__c",
        lineObject="Invoice_Line__c",
        lineExternalIdField="Line_Key__c",
        lineBillField="Invoice__c",
        accountLookupField=None,
        billFieldMapping=bill_map,
        lineFieldMapping=line_map,
    )
    try:
        (result,) = await env.batch(env.request(sf_bill("b1")))
    finally:
        await env.close()
    assert isinstance(result, DeliveryResult), result
    (invoice,) = fake.records("Invoice__c")
    assert invoice["M3ter_Id__c"] == "b1" and invoice["Amount__c"] == "15.50"
    lines = fake.records("Invoice_Line__c")
    assert sorted(r["Line_Key__c"] for r in lines) == ["b1:l1", "b1:l2"]
    assert {r["Invoice__c"] for r in lines} == {invoice["Id"]}


async def test_external_mapping_account_and_its_absence(env: Env) -> None:
    account = env.fake.seed("Account", Name="Mapped")
    (ok,) = await env.batch(
        env.request(sf_bill("b1"), customer=account, useExternalMappingAccountCode=True)
    )
    assert isinstance(ok, DeliveryResult)
    bill = env.fake.record(BILL, BILL_ID, "b1")
    assert bill is not None and bill["Account__c"] == account
    (bad,) = await env.batch(
        env.request(sf_bill("b2"), customer="cus_123", useExternalMappingAccountCode=True)
    )
    assert isinstance(bad, FatalBillError) and "not a Salesforce record id" in bad.message
    # an Account that is not there: Salesforce's own answer, for this bill only
    (gone,) = await env.batch(env.request(sf_bill("b3", account="acc-unknown")))
    assert isinstance(gone, FatalBillError) and "Foreign key external ID" in gone.message


async def test_excluded_line_types_and_sorting(env: Env) -> None:
    bill = sf_bill(
        "b1",
        sf_line("a", "5.00"),
        sf_line("m", "50.00", "MINIMUM_SPEND"),
        sf_line("c", "1.00"),
    )
    await env.batch(
        env.request(bill, excludedLineItemTypes=["MINIMUM_SPEND"], sortLineItemsBy="SUBTOTAL")
    )
    assert [r[LINE_ID] for r in lines_of(env.fake, "b1")] == ["b1:c", "b1:a"]


def test_schedule_trigger_gives_the_interval() -> None:
    destination = SalesforceDestination()
    event = make_config("c1", "SALESFORCE", dest={"triggerType": "EVENT"})
    hourly = make_config("c2", "SALESFORCE", dest={"triggerType": "SCHEDULE"})
    fast = make_config(
        "c3", "SALESFORCE", dest={"triggerType": "SCHEDULE", "scheduleIntervalSeconds": 5}
    )
    assert destination.schedule_interval(event) is None
    assert destination.schedule_interval(hourly) == 3600.0
    assert destination.schedule_interval(fast) == 5.0


# -- sessions and OAuth -------------------------------------------------------------------


async def test_an_expired_session_logs_in_again_once_without_losing_the_batch(env: Env) -> None:
    await env.batch(env.request(sf_bill("b1")))
    assert env.client.logins == 1
    env.fake.expire_sessions()
    results = await env.batch(env.request(sf_bill("b2")), env.request(sf_bill("b3")))
    assert all(isinstance(r, DeliveryResult) for r in results)
    assert env.client.logins == 2
    assert {r[BILL_ID] for r in env.fake.records(BILL)} == {"b1", "b2", "b3"}
    assert env.fake.stats.unauthorized == 1


async def test_a_session_refused_again_after_login_is_an_authentication_error(
    env: Env,
) -> None:
    env.fake.inject(status=401, count=2)
    with pytest.raises(AuthenticationError):
        await env.batch(env.request(sf_bill("b1")))
    assert env.client.logins == 2


async def test_jwt_bearer_with_the_sandbox_audience_and_my_domain(fake: FakeSalesforce) -> None:
    assert fake.url is not None
    fake.add_user(USER)
    jwt = credential(
        fake.url, grantType="JWT_BEARER", username=USER, privateKey=PRIVATE, clientSecret=None
    )
    api = SalesforceApi(jwt)
    try:
        session = await api.authenticate()
        assert session.instance_url == fake.url
        assert fake.auth.grants == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    finally:
        await api.close()
    assert jwt_audience("https://test.salesforce.com/") == "https://test.salesforce.com"
    assert jwt_audience("https://login.salesforce.com") == "https://login.salesforce.com"
    assert jwt_audience("https://acme.my.salesforce.com") == "https://login.salesforce.com"
    sandbox = "https://acme--uat.sandbox.my.salesforce.com"
    assert jwt_audience(sandbox) == "https://test.salesforce.com"
    other, _ = rsa_keypair()
    bad = SalesforceApi(jwt.model_copy(update={"private_key": SecretStr(other)}))
    dest = SalesforceDestination()
    try:
        with pytest.raises(Exception) as caught:
            await bad.authenticate()
        error = dest.classify(caught.value)
        assert isinstance(error, AuthenticationError) and "invalid assertion" in error.message
        assert PRIVATE[40:80] not in error.message
    finally:
        await bad.close()


async def test_web_server_flow_refresh_token(fake: FakeSalesforce) -> None:
    assert fake.url is not None
    code = fake.authorize(APP, USER)
    token = fake.auth.token(
        {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": APP,
            "client_secret": SECRET,
        },
        None,
        fake.url,
    )
    web = credential(fake.url, grantType="REFRESH_TOKEN", refreshToken=token["refresh_token"])
    api = SalesforceApi(web)
    try:
        await api.describe(BILL)
        fake.expire_sessions()
        described = await api.describe(BILL)
        assert described["name"] == BILL and api.logins == 2
        assert fake.auth.grants[-2:] == ["refresh_token", "refresh_token"]
    finally:
        await api.close()


# -- limits -------------------------------------------------------------------------------


async def test_daily_allocation_is_a_rate_limit_and_usage_is_a_metric(env: Env) -> None:
    await env.batch(env.request(sf_bill("b1")))
    labels = {"destination": "salesforce", "credential_id": "cred-sf", "window": "day"}
    remaining = REGISTRY.get_sample_value("billsync_sink_provider_quota_remaining", labels)
    limit = REGISTRY.get_sample_value("billsync_sink_provider_quota_limit", labels)
    assert (remaining, limit) == (99_999.0, 100_000.0)
    env.fake.used = env.fake.config.daily_limit
    with pytest.raises(RateLimitedError) as caught:
        await env.batch(env.request(sf_bill("b2")))
    assert caught.value.status_code == 403 and (caught.value.retry_after or 0) >= 60


async def test_the_sink_stops_before_the_allocation_runs_out(env: Env) -> None:
    env.fake.used = 99_000  # of 100,000: beyond the 98 % billsync leaves to others
    await env.batch(env.request(sf_bill("b1")))  # the first answer tells the usage
    calls = env.fake.stats.api_calls
    with pytest.raises(RateLimitedError):
        await env.batch(env.request(sf_bill("b2")))
    assert env.fake.stats.api_calls == calls  # refused without a call


def test_usage_pause_slows_down_then_stops() -> None:
    assert usage_pause(None) == 0.0
    assert usage_pause(ApiUsage(10, 100_000)) == 0.0
    slow = usage_pause(ApiUsage(90_000, 100_000))
    slower = usage_pause(ApiUsage(97_000, 100_000))
    assert slow is not None and slower is not None and 0 < slow < slower
    assert usage_pause(ApiUsage(98_000, 100_000)) is None
    assert parse_limit_info("api-usage=25/15000") == ApiUsage(25, 15000)
    both = "api-usage=18/5000; per-app-api-usage=17/250(appName=sample-app)"
    assert parse_limit_info(both) == ApiUsage(18, 5000)


async def test_at_most_the_concurrent_allowance_at_once(fake: FakeSalesforce) -> None:
    assert fake.url is not None
    fake.config.latency = 0.05
    api = SalesforceApi(credential(fake.url), concurrent=3)
    try:
        await asyncio.gather(*(api.describe(BILL) for _ in range(12)))
    finally:
        await api.close()
    assert fake.stats.max_concurrent == 3 and fake.stats.refused == 0


async def test_connecting_verifies_the_credential(fake: FakeSalesforce) -> None:
    assert fake.url is not None
    verify = verifier_for(Destination.SALESFORCE)
    assert verify is not None
    ok = await verify(credential(fake.url), Destination.SALESFORCE)
    assert ok.ok
    refused = await verify(credential(fake.url, clientSecret="wrong"), Destination.SALESFORCE)
    assert not refused.ok and not refused.retriable and "invalid_client" in (refused.reason or "")
    assert "wrong" not in (refused.reason or "")
    fake.inject(status=503)
    later = await verify(credential(fake.url), Destination.SALESFORCE)
    assert not later.ok and later.retriable
