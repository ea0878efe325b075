"""`make bench-stripe`: the Stripe sink against the local Stripe.

(a) the fake limited to 25 requests/s with 50 ms latency and a backlog of 2,000 bills:
    the achieved share of the allowed rate (target >= 90%) and the 429 count;
(b) the fake unlimited: bills/s, Stripe calls per bill (target <= 3) and p99 end-to-end
    latency from bill-generated to COMPLETE (router + sink);
(c) the sink's peak memory while a 100,000-envelope backlog drains (target < 300 MB).
Env: BENCH_A_BILLS (2000), BENCH_B_BILLS (2000), BENCH_C_BILLS (100000)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer

from benchmarks.common import MemorySampler, bench_settings, percentile, spawn, wait_committed
from fakes.stripe import FakeStripe
from services.router.envelopes import EnvelopeBuilder
from shared.contracts import IntegrationRun, ResultRecordAdapter, RunStatus, Trigger, parse_config
from shared.credentials import CredentialAdapter, CredentialCipher, generate_key
from shared.credentials.store import publish_credential, seal
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.sampledata import make_accounts, make_bills
from shared.settings import Settings

KEY = "sk_test_bench"
ACCOUNTS = 200


async def prepare(settings: Settings, fake: FakeStripe, cipher: CredentialCipher) -> Any:
    await ensure_topics(settings)
    for account in make_accounts(ACCOUNTS):
        fake.seed_customer(account.id, currency=(account.currency or "usd").lower())
    config = parse_config(
        {"id": "cfg-bench", "destination": "STRIPE_TEST", "integrationCredentialsId": "cred-bench"}
    )
    cred = CredentialAdapter.validate_python({"id": "cred-bench", "type": "STRIPE", "apiKey": KEY})
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await publish_credential(producer, settings.topics.name("credentials"), seal(cred, cipher))
        await producer.send_and_wait(
            settings.topics.name("integration_configs"), config.to_bytes(), key=config.id.encode()
        )
    finally:
        await producer.stop()
    return config


async def backlog(settings: Settings, config: Any, count: int, lines: int) -> None:
    accounts = make_accounts(ACCOUNTS)
    templates = make_bills(accounts, min(count, 500), lines, embed_account=True)
    builder = EnvelopeBuilder({})
    producer = make_producer(settings.kafka_bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        for i in range(count):
            bill = templates[i % len(templates)].model_copy(update={"id": f"bill-{i:07d}"})
            assert bill.account is not None
            [(_, _, body)] = builder.build(
                bill, bill.account, [config], Trigger.GENERATED, f"bench/0/{i}"
            )
            await producer.send(settings.topics.dispatch("stripe"), body, key=b"cfg-bench")
            if i and i % 20000 == 0:
                print(f"  backlog: {i:,}/{count:,} envelopes", file=sys.stderr)
        await producer.flush()
    finally:
        await producer.stop()


def sink_env(settings: Settings, url: str, key: str) -> dict[str, str]:
    return {
        "BILLSYNC_STRIPE_API_BASE": url,
        "BILLSYNC_CREDENTIALS_KEY": key,
        "BILLSYNC_SINK_RETRY_BASE_DELAY": "0.2",
    }


async def scenario_a(bills: int) -> dict[str, float]:
    settings = bench_settings("stripe-a")
    key = generate_key()
    fake = FakeStripe(
        api_keys=(KEY,),
        rate_limits={"test_per_second": 25, "endpoint_per_second": 25},
        faults={"latency_ms": 50},
    )
    url = await fake.start()
    try:
        config = await prepare(settings, fake, CredentialCipher(key))
        await backlog(settings, config, bills, 5)
        sink = spawn("services.stripe_sink", settings, **sink_env(settings, url, key))
        started = time.monotonic()
        await wait_committed(
            settings.kafka_bootstrap_servers,
            f"{settings.consumer_group_prefix}-stripe-sink",
            {settings.topics.dispatch("stripe")},
            bills,
            "(a) rate-limited",
        )
        elapsed = time.monotonic() - started
        sink.kill()
        stats = fake.stats
        admitted = stats["requests"] - stats["rate_limited"]
        return {
            "elapsed": elapsed,
            "admitted": admitted,
            "rate": admitted / elapsed,
            "share": admitted / elapsed / 25,
            "429": stats["rate_limited"],
            "calls_per_bill": admitted / bills,
        }
    finally:
        await fake.stop()


async def scenario_b(bills: int) -> dict[str, float]:
    settings = bench_settings("stripe-b")
    key = generate_key()
    fake = FakeStripe(api_keys=(KEY,), rate_limits={"enabled": False})
    url = await fake.start()
    try:
        await prepare(settings, fake, CredentialCipher(key))
        router = spawn("services.router", settings)
        sink = spawn("services.stripe_sink", settings, **sink_env(settings, url, key))
        await asyncio.sleep(4)  # both services up and following their tables
        accounts = make_accounts(ACCOUNTS)
        sent: dict[str, asyncio.Future[Any]] = {}
        producer = make_producer(settings.kafka_bootstrap_servers)
        await producer.start()
        started = time.monotonic()
        for bill in make_bills(accounts, bills, 10, embed_account=True):
            meta = await producer.send(
                settings.topics.name("bill_generated"), bill.to_bytes(), key=bill.id.encode()
            )
            sent[bill.id] = meta  # type: ignore[assignment]
        await producer.flush()
        stamps = {bid: (await fut).timestamp / 1000 for bid, fut in sent.items()}
        await producer.stop()
        done = await wait_complete(settings, bills)
        elapsed = time.monotonic() - started
        router.kill()
        sink.kill()
        latencies = [ts - stamps[run.entity_id] for run, ts in done if run.entity_id in stamps]
        return {
            "rate": bills / elapsed,
            "calls_per_bill": fake.stats["requests"] / bills,
            "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99),
        }
    finally:
        await fake.stop()


async def wait_complete(settings: Settings, count: int) -> list[tuple[IntegrationRun, float]]:
    consumer = AIOKafkaConsumer(
        settings.topics.name("integration_results"),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    done: dict[str, tuple[IntegrationRun, float]] = {}
    try:
        deadline = time.monotonic() + 600
        while len(done) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for rec in records:
                    item = ResultRecordAdapter.validate_json(rec.value or b"")
                    if isinstance(item, IntegrationRun) and item.status is RunStatus.COMPLETE:
                        done.setdefault(item.id, (item, rec.timestamp / 1000))
    finally:
        await consumer.stop()
    return list(done.values())


async def scenario_c(bills: int) -> dict[str, float]:
    settings = bench_settings("stripe-c")
    key = generate_key()
    fake = FakeStripe(api_keys=(KEY,), rate_limits={"enabled": False})
    url = await fake.start()
    try:
        config = await prepare(settings, fake, CredentialCipher(key))
        await backlog(settings, config, bills, 10)
        sink = spawn("services.stripe_sink", settings, **sink_env(settings, url, key))
        sampler = MemorySampler(sink.pid)
        started = time.monotonic()
        await wait_committed(
            settings.kafka_bootstrap_servers,
            f"{settings.consumer_group_prefix}-stripe-sink",
            {settings.topics.dispatch("stripe")},
            bills,
            "(c) backlog",
            timeout=3600,
        )
        elapsed = time.monotonic() - started
        peak = sampler.stop()
        sink.kill()
        return {"peak_mb": peak / 2**20, "rate": bills / elapsed}
    finally:
        await fake.stop()


async def main() -> None:
    a = await scenario_a(int(os.environ.get("BENCH_A_BILLS", "2000")))
    print(
        f"(a) 25 req/s, 50 ms latency: {a['rate']:.1f} admitted req/s = {a['share']:.0%} of "
        f"the allowed rate (target >= 90%), 429s: {a['429']:.0f}, "
        f"calls/bill {a['calls_per_bill']:.2f}"
    )
    b = await scenario_b(int(os.environ.get("BENCH_B_BILLS", "2000")))
    print(
        f"(b) unlimited: {b['rate']:.0f} bills/s, {b['calls_per_bill']:.2f} Stripe calls/bill "
        f"(target <= 3), end-to-end p50 {b['p50'] * 1000:.0f} ms, p99 {b['p99'] * 1000:.0f} ms"
    )
    c = await scenario_c(int(os.environ.get("BENCH_C_BILLS", "100000")))
    print(
        f"(c) backlog drain: peak RSS {c['peak_mb']:.0f} MiB (target < 300 MB) at "
        f"{c['rate']:.0f} bills/s"
    )


if __name__ == "__main__":
    asyncio.run(main())
