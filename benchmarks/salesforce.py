"""`make bench-salesforce`: the Salesforce destination against the local Salesforce.

A backlog of bills (sample data, BENCH_SF_LINES lines each) is delivered in batches of 200
bills, as the batch path hands them over, and, side by side in the same run, one bill per
delivery (the single path: one Composite per bill) as the baseline:
- API calls per 200 records (target <= 2) and the ratio against the baseline;
- the share of a configured daily allocation (BENCH_SF_ALLOCATION, 100,000) the backlog used;
- the same backlog regenerated (every bill loses a line and changes the rest): calls per 200
  records including the deletes of vanished lines;
- peak memory of the delivery (tracemalloc) per 1,000 bills.
Env: BENCH_SF_BILLS (2000), BENCH_SF_LINES (5), BENCH_SF_BASELINE_BILLS (300)."""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime

from fakes.salesforce import FakeSalesforce
from services.salesforce_sink.client import SalesforceApi
from services.salesforce_sink.destination import SalesforceDestination
from shared.contracts import (
    Bill,
    DispatchEnvelope,
    SalesforceIntegrationConfig,
    Trigger,
    dispatch_id,
    parse_config,
)
from shared.credentials.models import SalesforceCredential
from shared.sampledata import make_accounts, make_bills
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.ratelimit import AdaptiveRateLimiter, RateSpec

BATCH = 200
APP, SECRET = "bench-app", "bench-secret"


def _config() -> SalesforceIntegrationConfig:
    config = parse_config(
        {
            "id": "cfg-bench-sf",
            "destination": "SALESFORCE",
            "integrationCredentialsId": "cred-bench-sf",
            "entityConfig": {"sortLineItemsBy": "SUBTOTAL"},
        }
    )
    if not isinstance(config, SalesforceIntegrationConfig):
        raise TypeError("not a Salesforce configuration")
    return config


def _requests(config: SalesforceIntegrationConfig, bills: Sequence[Bill]) -> list[DeliveryRequest]:
    out = []
    for bill in bills:
        envelope = DispatchEnvelope(
            dispatch_id=dispatch_id(bill.id, bill.version, config.id, 1, Trigger.GENERATED),
            trigger=Trigger.GENERATED,
            integration_config_id=config.id,
            integration_config_version=1,
            integration_config=config,
            bill=bill,
            account=bill.account or make_accounts(1)[0],
            routed_at=datetime.now(UTC).isoformat(),
        )
        out.append(DeliveryRequest(envelope, config, bill.account_id, None, False, 1, "run"))
    return out


async def _deliver(
    fake: FakeSalesforce, requests: list[DeliveryRequest], batch: int
) -> tuple[int, int, float]:
    """(API calls, failed bills, seconds) for `requests` in batches of `batch`."""
    destination = SalesforceDestination()
    assert fake.url is not None
    credential = SalesforceCredential.model_validate(
        {
            "id": "cred-bench-sf",
            "grantType": "CLIENT_CREDENTIALS",
            "clientId": APP,
            "clientSecret": SECRET,
            "loginUrl": fake.url,
        }
    )
    client = SalesforceApi(credential)
    calls = ProviderCalls("salesforce", AdaptiveRateLimiter(RateSpec(None)), destination.classify)
    before = fake.stats.api_calls
    failed = 0
    started = time.perf_counter()
    try:
        for i in range(0, len(requests), batch):
            outcomes = await destination.deliver_batch(requests[i : i + batch], client, calls)
            failed += sum(not isinstance(o, DeliveryResult) for o in outcomes)
    finally:
        await client.close()
    return fake.stats.api_calls - before, failed, time.perf_counter() - started


def _regenerated(bills: Sequence[Bill]) -> list[Bill]:
    out = []
    for bill in bills:
        lines = [
            line.model_copy(update={"subtotal": line.subtotal + 1}) for line in bill.line_items[1:]
        ]
        out.append(bill.model_copy(update={"version": bill.version + 1, "line_items": lines}))
    return out


async def main() -> None:
    n_bills = int(os.environ.get("BENCH_SF_BILLS", "2000"))
    n_lines = int(os.environ.get("BENCH_SF_LINES", "5"))
    n_base = int(os.environ.get("BENCH_SF_BASELINE_BILLS", "300"))
    allocation = int(os.environ.get("BENCH_SF_ALLOCATION", "100000"))
    accounts = make_accounts(50)
    config = _config()
    fake = FakeSalesforce(daily_limit=allocation)
    fake.add_app(APP, client_secret=SECRET, run_as="bench@example.com")
    await fake.start()
    for account in accounts:
        fake.seed("Account", Name=account.account_name, Billsync_Account_Id__c=account.id)
    try:
        bills = make_bills(accounts, n_bills, lines=n_lines)
        records = n_bills + sum(len(b.line_items) for b in bills)
        tracemalloc.start()
        calls, failed, seconds = await _deliver(fake, _requests(config, bills), BATCH)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        used = fake.used
        regen = _regenerated(bills)
        regen_records = n_bills + sum(len(b.line_items) for b in regen)
        regen_calls, regen_failed, _ = await _deliver(fake, _requests(config, regen), BATCH)
        base_bills = [b.model_copy(update={"id": f"base-{b.id}"}) for b in bills[:n_base]]
        base_records = len(base_bills) + sum(len(b.line_items) for b in base_bills)
        base_calls, base_failed, base_seconds = await _deliver(
            fake, _requests(config, base_bills), 1
        )
    finally:
        await fake.stop()
    per_200 = calls / records * 200
    base_per_200 = base_calls / base_records * 200
    print(f"backlog: {n_bills} bills x {n_lines} lines = {records} records, batches of {BATCH}")
    print(
        f"  batched:  {calls} API calls = {per_200:.3f} per 200 records (target <= 2), "
        f"{failed} failed, {records / seconds:.0f} records/s"
    )
    print(
        f"  baseline (one bill per call, {len(base_bills)} bills): {base_calls} calls = "
        f"{base_per_200:.2f} per 200 records, {base_records / base_seconds:.0f} records/s, "
        f"{base_failed} failed"
    )
    print(f"  ratio batched/baseline calls per record: {per_200 / base_per_200:.3f}")
    print(f"  allocation: {used} of {allocation} calls = {used / allocation:.3%} for the backlog")
    print(
        f"  regenerated (one line gone per bill): {regen_calls} calls for {regen_records} "
        f"records = {regen_calls / regen_records * 200:.3f} per 200, {regen_failed} failed"
    )
    print(
        f"  peak memory (tracemalloc, delivery + local Salesforce in one process): "
        f"{peak / 2**20:.1f} MiB = {peak / 2**20 / n_bills * 1000:.1f} MiB per 1,000 bills"
    )


if __name__ == "__main__":
    asyncio.run(main())
