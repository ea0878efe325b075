"""`make bench-salesforce`: the Salesforce destination against the local Salesforce.

A backlog of bills (sample data, BENCH_SF_LINES lines each) is delivered in batches of 200
bills, as the batch path hands them over, and, side by side in the same run, one bill per
delivery (the single path: one Composite per bill) as the baseline:
- API calls per 200 records (target <= 2) and the ratio against the baseline;
- the share of a configured daily allocation (BENCH_SF_ALLOCATION, 100,000) the backlog used;
- the same backlog regenerated (every bill loses a line and changes the rest): calls per 200
  records including the deletes of vanished lines;
- peak memory of the delivery (tracemalloc) per 1,000 bills;
- through the runner on the broker (the batch path forms the batches): a backlog of
  BENCH_SF_RUNNER_BILLS envelopes on dispatch.salesforce drained by one sink, API calls per
  200 records and the drain time (skipped with BENCH_SF_RUNNER_BILLS=0).
Env: BENCH_SF_BILLS (2000), BENCH_SF_LINES (5), BENCH_SF_BASELINE_BILLS (300),
BENCH_SF_RUNNER_BILLS (2000)."""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime

from benchmarks.common import bench_settings, wait_committed
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
from shared.credentials import CredentialCipher, generate_key
from shared.credentials.models import SalesforceCredential
from shared.credentials.store import publish_credential, seal
from shared.kafka.producer import make_producer
from shared.kafka.topics import delete_topics_with_prefix, ensure_topics
from shared.logging import configure_logging
from shared.sampledata import make_accounts, make_bills
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.options import SinkOptions
from shared.sinks.partitioning import dispatch_key
from shared.sinks.ratelimit import AdaptiveRateLimiter, RateSpec
from shared.sinks.runner import SinkRunner, running_sink

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


def _credential(url: str) -> SalesforceCredential:
    return SalesforceCredential.model_validate(
        {
            "id": "cred-bench-sf",
            "grantType": "CLIENT_CREDENTIALS",
            "clientId": APP,
            "clientSecret": SECRET,
            "loginUrl": url,
        }
    )


async def through_the_runner(
    fake: FakeSalesforce, config: SalesforceIntegrationConfig, bills: Sequence[Bill]
) -> tuple[int, float]:
    """(API calls, seconds to drain) for a backlog on dispatch.salesforce."""
    assert fake.url is not None
    settings = bench_settings("salesforce")
    key = generate_key()
    settings = settings.model_copy(update={"credentials_key": key})
    cipher = CredentialCipher(key)
    await ensure_topics(settings)
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await publish_credential(
            producer, settings.topics.name("credentials"), seal(_credential(fake.url), cipher)
        )
        await producer.send_and_wait(
            settings.topics.name("integration_configs"), config.to_bytes(), key=b"cfg-bench-sf"
        )
        topic = settings.topics.dispatch("salesforce")
        for request in _requests(config, bills):
            key_bytes = dispatch_key(config).encode()
            await producer.send(topic, request.envelope.to_bytes(), key=key_bytes)
        await producer.flush()
    finally:
        await producer.stop()
    before = fake.stats.api_calls
    runner = SinkRunner(settings, SalesforceDestination(), SinkOptions(), cipher)
    try:
        async with running_sink(runner):
            seconds = await wait_committed(
                settings.kafka_bootstrap_servers,
                f"{settings.consumer_group_prefix}-salesforce-sink",
                {topic},
                len(bills),
                "runner",
                timeout=600,
            )
    finally:
        await delete_topics_with_prefix(settings.kafka_bootstrap_servers, settings.topics.prefix)
    return fake.stats.api_calls - before, seconds


async def main() -> None:
    configure_logging("WARNING", service="bench-salesforce")
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
        n_runner = int(os.environ.get("BENCH_SF_RUNNER_BILLS", "2000"))
        runner_bills = [
            b.model_copy(update={"id": f"run-{b.id}"})
            for b in make_bills(accounts, n_runner, lines=n_lines, seed=5)
        ]
        runner_records = n_runner + sum(len(b.line_items) for b in runner_bills)
        runner_calls, runner_seconds = (
            await through_the_runner(fake, config, runner_bills) if n_runner else (0, 0.0)
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
    if runner_records and n_runner:
        print(
            f"  through the runner (batch path, {n_runner} bills = {runner_records} records): "
            f"{runner_calls} calls = {runner_calls / runner_records * 200:.3f} per 200 "
            f"records, drained in {runner_seconds:.1f}s"
        )
    print(
        f"  peak memory (tracemalloc, delivery + local Salesforce in one process): "
        f"{peak / 2**20:.1f} MiB = {peak / 2**20 / n_bills * 1000:.1f} MiB per 1,000 bills"
    )


if __name__ == "__main__":
    asyncio.run(main())
