"""`make up`'s Xero part works: the local Xero as deploy/local/stack.sh starts it, the sample
credential and configuration of deploy/local, and the sample bills `produce-sample` makes
(the ones the configuration's filter lets through) become invoices in the local Xero."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import yaml

from fakes.xero.cli import build, parse_args
from services.xero_sink.destination import XeroDestination
from shared.contracts import (
    DispatchEnvelope,
    RunStatus,
    Trigger,
    XeroIntegrationConfig,
    dispatch_id,
    parse_config,
)
from shared.credentials import CredentialAdapter, XeroCredential
from shared.filters import parse_filter
from shared.routing.prepare import prepare_bill
from shared.routing.rules import account_view
from shared.sampledata import make_accounts, make_bills
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.limits import QuotaLimiter

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local"


def stack_fake_args() -> list[str]:
    """The arguments stack.sh gives `python -m fakes.xero` (port aside)."""
    script = (LOCAL / "stack.sh").read_text()
    match = re.search(r"-m fakes\.xero (.*?)\n\s*wait_http", script, re.S)
    assert match, "stack.sh starts the local Xero"
    args = match.group(1).replace("\\\n", " ").split()
    return [a for a in args if not a.startswith("--port") and not a.isdigit()]


async def test_the_local_stacks_sample_bills_arrive_in_the_local_xero() -> None:
    fake = build(parse_args(stack_fake_args()))
    url = await fake.start()
    try:
        configs = [parse_config(c) for c in yaml.safe_load((LOCAL / "configs.yaml").read_text())]
        (config,) = [c for c in configs if isinstance(c, XeroIntegrationConfig)]
        creds = yaml.safe_load((LOCAL / "credentials.yaml").read_text())
        (cred,) = [CredentialAdapter.validate_python(c) for c in creds if c["type"] == "XERO"]
        assert isinstance(cred, XeroCredential) and cred.id == config.integration_credentials_id
        accounts = make_accounts(12)
        by_id = {a.id: a for a in accounts}
        expression = parse_filter(config.entity_config.account_filter or "")
        bills = [
            b
            for b in make_bills(accounts, 40, 12, embed_account=False)
            if expression.matches(account_view(by_id[b.account_id]))
        ]
        assert bills, "the sample configuration matches some sample bills"
        destination = XeroDestination(url, token_url=f"{url}/connect/token")
        client = destination.make_client(config.destination, cred)
        requests = [
            DeliveryRequest(
                DispatchEnvelope(
                    dispatch_id=dispatch_id(b.id, b.version, config.id, 1, Trigger.GENERATED),
                    trigger=Trigger.GENERATED,
                    integration_config_id=config.id,
                    integration_config_version=1,
                    integration_config=config,
                    bill=prepare_bill(b, config.entity_config),
                    account=by_id[b.account_id],
                    routed_at=datetime.now(UTC).isoformat(),
                ),
                config,
                b.account_id,
                None,
                False,
                1,
                f"run-{b.id}",
            )
            for b in bills
        ]
        calls = ProviderCalls("xero", QuotaLimiter(destination.limits), destination.classify)
        try:
            outcomes = await destination.deliver_batch(requests, client, calls)
        finally:
            await client.close()
        assert all(
            isinstance(o, DeliveryResult) and o.status is RunStatus.COMPLETE for o in outcomes
        ), outcomes
        (tenant,) = fake.organisations
        numbers = {d["InvoiceNumber"] for d in fake.documents(tenant)}
        numbers |= {d["CreditNoteNumber"] for d in fake.documents(tenant, "CreditNotes")}
        assert numbers == {b.id for b in bills}
    finally:
        await fake.stop()
