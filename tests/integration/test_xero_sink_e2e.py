"""The Xero sink end to end on the real broker against the local Xero: mappings from the
external-mappings topic, a SIGKILLed `billsync xero-sink` with drops after commit, a spent
day that parks only its organisation, an auth failure isolated to its configuration, and
a token refresh that crashes half-way without losing access."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import aiohttp
import pytest
from pydantic import SecretStr

from fakes.xero import FakeXero, spec
from services.xero_sink.destination import XeroDestination
from shared.contracts import (
    Bill,
    EventType,
    ExternalMapping,
    IntegrationConfig,
    RunStatus,
)
from shared.credentials import CredentialCipher, XeroCredential, generate_key
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from shared.sinks.errors import RetriableError
from shared.sinks.options import SinkOptions
from shared.sinks.runner import SinkRunner
from shared.sinks.token_refresh import (
    AuthlibExchange,
    ControlPlaneCredentials,
    ControlPlaneLink,
    TokenRefresher,
)
from tests.support.builders import account, bill, config, line
from tests.support.control import running_control_plane
from tests.support.services import start_service
from tests.support.sink_stack import SinkStack

pytestmark = pytest.mark.kafka

TENANT_A = "aaaaaaaa-0000-4000-8000-00000000000a"
TENANT_B = "bbbbbbbb-0000-4000-8000-00000000000b"
CLIENT, SECRET = "xero-client", "xero-secret"
FAST = SinkOptions(max_attempts=8, retry_base_delay=0.05, retry_max_delay=0.5, commit_interval=0.2)


@dataclass
class XeroStack(SinkStack):
    settings: Settings
    fake: FakeXero
    url: str
    key: str
    options: SinkOptions = field(default_factory=lambda: FAST)
    credential_type: ClassVar[str] = "XERO"

    def xero_credential(
        self, cred_id: str, tenant: str, token: str | None = None
    ) -> XeroCredential:
        access = token or self.fake.issue_tokens(CLIENT)["access_token"]
        return XeroCredential(
            id=cred_id,
            client_id=CLIENT,
            client_secret=SecretStr(SECRET),
            tenant_id=tenant,
            access_token=SecretStr(access),
            access_token_expires_at=datetime.now(UTC) + timedelta(hours=1),
        )

    def runner(self, **option_overrides: Any) -> SinkRunner:
        options = self.options.model_copy(update=option_overrides)
        destination = XeroDestination(self.url, token_url=f"{self.url}/connect/token")
        return SinkRunner(self.settings, destination, options, self.cipher)

    def invoices_by_number(self, tenant: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for d in self.fake.documents(tenant):
            out.setdefault(d["InvoiceNumber"], []).append(d)
        return out


@contextlib.asynccontextmanager
async def xero_stack(settings: Settings, **fake_config: Any) -> AsyncIterator[XeroStack]:
    key = generate_key()
    settings = settings.model_copy(update={"credentials_key": SecretStr(key)})
    await ensure_topics(settings)
    fake = FakeXero(clients={CLIENT: SECRET}, **fake_config)
    for tenant in (TENANT_A, TENANT_B):
        org = fake.add_organisation(f"Org {tenant[0]}", tenant)
        org.add_item("API", "API calls", "200")
        fake.connect(CLIENT, tenant)
    await fake.start()
    try:
        yield XeroStack(settings, fake, fake.url or "", key)
    finally:
        await fake.stop()


def xero_config(cid: str, cred: str, **dest: Any) -> IntegrationConfig:
    return config(cid, "XERO", integrationCredentialsId=cred, dest=dest or None)


def bills(n: int, prefix: str = "bill", version: int = 1) -> list[Bill]:
    return [
        bill(
            f"{prefix}-{i:02d}",
            f"acc-{i % 5}",
            version=version,
            embed=account(f"acc-{i % 5}"),
            bill_date=dt.date(2026, 11, 1),
            due_date=dt.date(2026, 12, 1),
            lines=[
                line(f"{prefix}{i}-1", "USAGE", "12.34", quantity="3", productId="prod-api"),
                line(f"{prefix}{i}-2", "STANDING_CHARGE", "5"),
            ],
        )
        for i in range(n)
    ]


def finals(count: int) -> Any:
    return lambda runs: sum(1 for r in runs.values() if r.status.is_final) >= count


def assert_one_invoice_per_bill(stack: XeroStack, tenant: str, expected: set[str]) -> None:
    by_number = stack.invoices_by_number(tenant)
    assert set(by_number) == expected, f"missing {expected - set(by_number)}"
    doubled = {n: len(v) for n, v in by_number.items() if len(v) != 1}
    assert not doubled, f"duplicate invoices: {doubled}"


async def test_product_mappings_from_the_topic_reach_xero(settings: Settings) -> None:
    async with xero_stack(settings) as stack:
        await stack.publish_credentials(stack.xero_credential("cred-a", TENANT_A))
        cfg = xero_config("cfg-a", "cred-a", invoiceStatus="AUTHORISED", taxType="OUTPUT")
        await stack.configs(cfg)
        await stack.mappings(
            ExternalMapping.model_validate(
                {
                    "id": "map-api",
                    "externalSystem": "Xero",
                    "externalTable": "Item",
                    "externalId": "API",
                    "m3terEntity": "Product",
                    "m3terId": "prod-api",
                }
            )
        )
        items = bills(3)
        async with stack.sink():
            await stack.envelopes(cfg, items)
            runs = await stack.runs_where(finals(3))
        assert {r.status for r in runs.values()} == {RunStatus.COMPLETE}
        for doc in stack.fake.documents(TENANT_A):
            assert doc["Status"] == "AUTHORISED" and doc["Total"] == Decimal("17.34")
            assert doc["LineItems"][0]["ItemCode"] == "API"
            assert doc["LineItems"][0]["TaxType"] == "OUTPUT"
            assert doc["Contact"]["Name"].startswith("Name acc-")
        for req in stack.fake.requests:  # what the sink sent, against Xero's own schema
            for element in req["body"]["Invoices"]:
                assert spec.errors("Invoice", element) == []


async def test_sigkilled_sink_with_drops_after_commit_leaves_one_invoice_per_bill(
    settings: Settings,
) -> None:
    async with xero_stack(settings, latency=0.05) as stack:
        await stack.publish_credentials(stack.xero_credential("cred-a", TENANT_A))
        cfg = xero_config("cfg-k", "cred-a")
        await stack.configs(cfg)
        stack.fake.inject(action="drop_after_commit", method="POST", count=2)
        items = bills(40)
        env = {
            "BILLSYNC_XERO_API_BASE": stack.fake.url or "",
            "BILLSYNC_CREDENTIALS_KEY": stack.key,
            "BILLSYNC_SINK_RETRY_BASE_DELAY": "0.05",
        }
        proc = start_service("services.xero_sink", stack.settings, **env)
        try:
            await stack.envelopes(cfg, items)
            deadline = time.monotonic() + 60
            while len(stack.fake.documents(TENANT_A)) < 8:
                assert time.monotonic() < deadline, "sink made no progress"
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = start_service("services.xero_sink", stack.settings, **env)
            await stack.runs_where(
                lambda runs: (
                    {r.entity_id for r in runs.values() if r.status is RunStatus.COMPLETE}
                    >= {b.id for b in items}
                ),
                timeout=120,
            )
        finally:
            proc.kill()
            proc.wait(10)
        assert stack.fake.stats["dropped_after_commit"] >= 1  # batches: fewer writes to drop
        assert_one_invoice_per_bill(stack, TENANT_A, {b.id for b in items})


async def test_a_spent_day_parks_only_its_organisation(settings: Settings) -> None:
    async with xero_stack(settings) as stack:
        await stack.publish_credentials(
            stack.xero_credential("cred-a", TENANT_A), stack.xero_credential("cred-b", TENANT_B)
        )
        spent, fine = xero_config("cfg-spent", "cred-a"), xero_config("cfg-fine", "cred-b")
        await stack.configs(spent, fine)
        stack.fake.exhaust_day(TENANT_A)
        async with stack.sink():
            await stack.envelopes(spent, bills(5, "spent"))
            await stack.envelopes(fine, bills(5, "fine"))
            runs = await stack.runs_where(
                lambda rs: (
                    sum(
                        1
                        for r in rs.values()
                        if r.integration_config_id == "cfg-fine" and r.status is RunStatus.COMPLETE
                    )
                    == 5
                    and any(
                        r.integration_config_id == "cfg-spent"
                        and r.status is RunStatus.RATE_LIMIT_RETRY
                        for r in rs.values()
                    )
                )
            )
            calls_to_a = stack.fake.stats["rate_limited"]["day"]
        parked = {r.status for r in runs.values() if r.integration_config_id == "cfg-spent"}
        assert RunStatus.COMPLETE not in parked and parked <= {
            RunStatus.STARTED,
            RunStatus.RATE_LIMIT_RETRY,
        }
        assert stack.fake.documents(TENANT_A) == []
        assert len(stack.fake.documents(TENANT_B)) == 5
        assert calls_to_a <= 5  # Xero's "day" answer parked the tenant; no storm of calls


async def test_an_auth_failure_stays_with_its_configuration(settings: Settings) -> None:
    async with xero_stack(settings) as stack:
        await stack.publish_credentials(
            stack.xero_credential("cred-good", TENANT_A),
            stack.xero_credential("cred-bad", TENANT_B, token="revoked"),
        )
        good, bad = xero_config("cfg-good", "cred-good"), xero_config("cfg-bad", "cred-bad")
        await stack.configs(good, bad)
        async with stack.sink():
            await stack.envelopes(bad, bills(4, "bad"))
            await stack.envelopes(good, bills(4, "good"))
            runs = await stack.runs_where(finals(8))
        by_cfg: dict[str, set[RunStatus]] = {}
        for r in runs.values():
            if r.status.is_final:
                by_cfg.setdefault(r.integration_config_id, set()).add(r.status)
        assert by_cfg == {"cfg-good": {RunStatus.COMPLETE}, "cfg-bad": {RunStatus.AUTH_FAILED}}
        _, events = await stack.results()
        assert {e.event_type for e in events} == {EventType.AUTHENTICATION_ERROR}


async def test_a_refresh_that_crashes_half_way_loses_no_access(settings: Settings) -> None:
    async with xero_stack(settings) as stack, running_control_plane(stack.settings) as cp:
        pair = stack.fake.issue_tokens(CLIENT, (TENANT_A,))
        body = {
            "type": "XERO",
            "id": "cred-rot",
            "clientId": CLIENT,
            "clientSecret": SECRET,
            "tenantId": TENANT_A,
            "accessToken": "expired",
            "refreshToken": pair["refresh_token"],
            "accessTokenExpiresAt": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        }
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{cp.base_url}/integrationcredentials", json=body, headers=cp.admin_headers
            ) as resp:
                assert resp.status == 201, await resp.text()

        def source(url: str) -> ControlPlaneCredentials:
            return ControlPlaneCredentials(
                stack.settings.topics.name("credentials"),
                stack.settings.kafka_bootstrap_servers,
                CredentialCipher(SecretStr(cp.credentials_key)),
                ControlPlaneLink(control_url=url, control_token=SecretStr(cp.admin_token)),
            )

        exchange = AuthlibExchange(f"{stack.fake.url}/connect/token")
        credential = await source(cp.base_url).latest("cred-rot")
        assert isinstance(credential, XeroCredential)
        # Xero rotates the refresh token, then the save never lands (the "crash").
        with pytest.raises(RetriableError):
            await TokenRefresher(source("http://127.0.0.1:9"), exchange).access_token(credential)
        assert stack.fake.stats["token_grants"]["refresh_token"] == 1
        # After the restart: the stored refresh token is the used one, inside its grace.
        refresher = TokenRefresher(source(cp.base_url), exchange)
        destination = XeroDestination(
            stack.fake.url, token_url=f"{stack.fake.url}/connect/token", refresher=refresher
        )
        stored = await source(cp.base_url).latest("cred-rot")
        assert isinstance(stored, XeroCredential)
        client = destination.make_client(xero_config("cfg-r", "cred-rot").destination, stored)
        try:
            assert await client.connections() != []
        finally:
            await client.close()
        saved = await source(cp.base_url).latest("cred-rot")
        assert isinstance(saved, XeroCredential) and saved.refresh_token
        assert saved.refresh_token.get_secret_value() != pair["refresh_token"]
        assert stack.fake.stats["token_grants"]["refresh_token"] == 2
