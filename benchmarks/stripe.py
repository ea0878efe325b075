"""`make bench-stripe`: the Stripe sink against the local Stripe.

(a) the fake limited to 25 requests/s with 50 ms latency and a backlog of 2,000 bills:
    the achieved share of the allowed rate (target >= 90%) and the 429 count;
(b) the fake unlimited (live mode: the sink keeps to Stripe's 100 requests/s): bills/s
    for a burst, Stripe calls per bill (target <= 3), and p50/p99 end-to-end latency from
    bill-generated to COMPLETE (router + sink) under a steady 10 bills/s;
(c) the sink's peak memory while a 100,000-envelope backlog drains (target < 300 MB).
Env: BENCH_A_BILLS (2000), BENCH_B_BILLS (2000), BENCH_C_BILLS (100000), BENCH_ONLY
(a subset of "abc")."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer

from benchmarks.common import (
    MemorySampler,
    bench_settings,
    committed_total,
    percentile,
    spawn,
    wait_committed,
)
from fakes.stripe import FakeStripe
from services.router.envelopes import EnvelopeBuilder
from shared.contracts import IntegrationRun, ResultRecordAdapter, RunStatus, Trigger, parse_config
from shared.credentials import CredentialAdapter, CredentialCipher, generate_key
from shared.credentials.store import publish_credential, seal
from shared.kafka.client_options import kafka_options
from shared.kafka.producer import make_producer
from shared.kafka.topics import delete_topics_with_prefix, ensure_topics
from shared.sampledata import make_accounts, make_bills
from shared.settings import Settings

KEY = "sk_test_bench"
LIVE_KEY = "sk_live_bench"
ACCOUNTS = 200


async def prepare(
    settings: Settings, fake: FakeStripe, cipher: CredentialCipher, live: bool = False
) -> Any:
    await ensure_topics(settings)
    for account in make_accounts(ACCOUNTS):
        currency = (account.currency or "usd").lower()
        fake.seed_customer(account.id, currency=currency, livemode=live)
    config = parse_config(
        {
            "id": "cfg-bench",
            "destination": "STRIPE" if live else "STRIPE_TEST",
            "integrationCredentialsId": "cred-bench",
        }
    )
    cred = CredentialAdapter.validate_python(
        {"id": "cred-bench", "type": "STRIPE", "apiKey": LIVE_KEY if live else KEY}
    )
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
    builder = EnvelopeBuilder()
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
        # Measure from the first call, not from process start (the fake has no event for it).
        while fake.stats["requests"] == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
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
        admitted = stats["requests"] - stats["rate_limited"] - 1  # the first marks the start
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
        await delete_topics_with_prefix(settings.kafka_bootstrap_servers, settings.topics.prefix)


async def scenario_b(bills: int) -> dict[str, float]:
    """Live mode (Stripe's 100 requests/s, which the sink respects; the fake adds none):
    a burst of `bills` for throughput, then a steady 10 bills/s for latency."""
    settings = bench_settings("stripe-b")
    key = generate_key()
    fake = FakeStripe(api_keys=(LIVE_KEY,), rate_limits={"enabled": False})
    url = await fake.start()
    try:
        await prepare(settings, fake, CredentialCipher(key), live=True)
        router = spawn("services.router", settings)
        sink = spawn("services.stripe_sink", settings, **sink_env(settings, url, key))
        await asyncio.sleep(5)  # both services up and following their tables
        started = time.monotonic()
        await publish_bills(settings, bills, rate=None, prefix="burst")
        burst = await wait_final(settings, bills)
        elapsed = time.monotonic() - started
        steady_count = 200
        stamps = await publish_bills(settings, steady_count, rate=10, prefix="steady")
        steady = await wait_final(settings, bills + steady_count)
        router.kill()
        sink.kill()
        complete = [(r, ts) for r, ts in steady if r.status is RunStatus.COMPLETE]
        others = Counter(r.status.value for r, _ in steady if r.status is not RunStatus.COMPLETE)
        if others:
            print(f"  (b) runs not COMPLETE: {dict(others)}", file=sys.stderr)
        latencies = [ts - stamps[r.entity_id] for r, ts in complete if r.entity_id in stamps]
        return {
            "rate": len(burst) / elapsed,
            "calls_per_bill": fake.stats["requests"] / len(complete),
            "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99),
        }
    finally:
        await fake.stop()
        await delete_topics_with_prefix(settings.kafka_bootstrap_servers, settings.topics.prefix)


async def publish_bills(
    settings: Settings, count: int, rate: float | None, prefix: str
) -> dict[str, float]:
    """Publishes bills (at `rate` per second, or all at once); returns their timestamps."""
    bills = make_bills(make_accounts(ACCOUNTS), count, 10, embed_account=True)
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    futures: dict[str, asyncio.Future[Any]] = {}
    started = time.monotonic()
    try:
        for i, bill in enumerate(bills):
            bill = bill.model_copy(update={"id": f"{prefix}-{bill.id}"})
            futures[bill.id] = await producer.send(
                settings.topics.name("bill_generated"), bill.to_bytes(), key=bill.id.encode()
            )
            if rate:
                await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
        await producer.flush()
        return {bid: (await fut).timestamp / 1000 for bid, fut in futures.items()}
    finally:
        await producer.stop()


async def wait_final(settings: Settings, count: int) -> list[tuple[IntegrationRun, float]]:
    """The first final record of each run (and its broker timestamp), once `count` exist."""
    consumer = AIOKafkaConsumer(
        settings.topics.name("integration_results"),
        **kafka_options(settings.kafka_bootstrap_servers),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    done: dict[str, tuple[IntegrationRun, float]] = {}
    try:
        deadline = time.monotonic() + 900
        while len(done) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for rec in records:
                    item = ResultRecordAdapter.validate_json(rec.value or b"")
                    if isinstance(item, IntegrationRun) and item.status.is_final:
                        done.setdefault(item.id, (item, rec.timestamp / 1000))
    finally:
        await consumer.stop()
    return list(done.values())


async def scenario_c(bills: int, seconds: float) -> dict[str, float]:
    """A backlog of `bills` envelopes (live mode); the sink's RSS is sampled while it drains,
    for `seconds` or until the backlog is gone. Memory is bounded by the in-flight cap
    (BILLSYNC_SINK_MAX_IN_FLIGHT), not by the backlog, so the plateau comes early."""
    settings = bench_settings("stripe-c")
    key = generate_key()
    fake = FakeStripe(api_keys=(LIVE_KEY,), rate_limits={"enabled": False})
    url = await fake.start()
    try:
        config = await prepare(settings, fake, CredentialCipher(key), live=True)
        await backlog(settings, config, bills, 10)
        sink = spawn("services.stripe_sink", settings, **sink_env(settings, url, key))
        sampler = MemorySampler(sink.pid)
        started = time.monotonic()
        group = f"{settings.consumer_group_prefix}-stripe-sink"
        topics = {settings.topics.dispatch("stripe")}
        drained = 0
        while time.monotonic() - started < seconds and drained < bills:
            await asyncio.sleep(5)
            drained = await committed_total(settings.kafka_bootstrap_servers, group, topics)
            print(
                f"  (c) drained {drained:,}/{bills:,}, peak RSS {sampler.peak_rss / 2**20:.0f} MiB",
                file=sys.stderr,
            )
        elapsed = time.monotonic() - started
        peak = sampler.stop()
        sink.kill()
        return {
            "peak_mb": peak / 2**20,
            "rate": drained / elapsed,
            "drained": drained,
            "seconds": elapsed,
        }
    finally:
        await fake.stop()
        await delete_topics_with_prefix(settings.kafka_bootstrap_servers, settings.topics.prefix)


async def main() -> None:
    only = os.environ.get("BENCH_ONLY", "abc")
    if "a" in only:
        await report_a()
    if "b" in only:
        await report_b()
    if "c" in only:
        await report_c()


async def report_a() -> None:
    a = await scenario_a(int(os.environ.get("BENCH_A_BILLS", "2000")))
    print(
        f"(a) 25 req/s, 50 ms latency: {a['rate']:.1f} admitted req/s = {a['share']:.0%} of "
        f"the allowed rate (target >= 90%), 429s: {a['429']:.0f}, "
        f"calls/bill {a['calls_per_bill']:.2f}"
    )


async def report_b() -> None:
    b = await scenario_b(int(os.environ.get("BENCH_B_BILLS", "2000")))
    print(
        f"(b) unlimited fake, live mode (100 req/s): {b['rate']:.0f} bills/s, "
        f"{b['calls_per_bill']:.2f} Stripe calls/bill "
        f"(target <= 3), end-to-end p50 {b['p50'] * 1000:.0f} ms, p99 {b['p99'] * 1000:.0f} ms"
    )


async def report_c() -> None:
    c = await scenario_c(
        int(os.environ.get("BENCH_C_BILLS", "100000")),
        float(os.environ.get("BENCH_C_SECONDS", "240")),
    )
    print(
        f"(c) backlog of {int(os.environ.get('BENCH_C_BILLS', '100000')):,} envelopes: peak RSS "
        f"{c['peak_mb']:.0f} MiB (target < 300 MB) while draining {c['drained']:,.0f} in "
        f"{c['seconds']:.0f} s ({c['rate']:.0f} bills/s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
