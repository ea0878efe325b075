"""`make bench-router`: the router against a plain aiokafka pass-through on the same data.

100,000 bills of ~20 lines, 100 configurations (allow lists, deny lists, expressions), the
local broker. Reports routed bills/s, the pass-through rate and their ratio, p50/p99
routing latency under a steady load, the router's peak memory, and the drain rate of two
router instances sharing the input's partitions in one group. Env: BENCH_BILLS (a smaller
backlog, e.g. 30000, gives a stable ratio for iteration)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import sys
import time
from dataclasses import dataclass

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.common import (
    MemorySampler,
    bench_settings,
    drain_rate,
    spawn,
)
from shared.contracts import IntegrationConfig, parse_config
from shared.kafka.client_options import kafka_options
from shared.kafka.producer import make_producer
from shared.kafka.topics import delete_topics_with_prefix, ensure_topics
from shared.sampledata import COUNTRIES, TIERS, make_accounts, make_bills
from shared.settings import Settings

DESTINATIONS = ["STRIPE", "STRIPE_TEST", "PADDLE", "SALESFORCE", "XERO"]
HTTP_PORT = 19301
ACCOUNTS = 5000  # one bill run: every account billed, 20 bills each over 100k


def make_configs(account_ids: list[str], rng: random.Random) -> list[IntegrationConfig]:
    configs: list[IntegrationConfig] = []
    shuffled = account_ids[:]
    rng.shuffle(shuffled)
    for i in range(100):
        data: dict[str, object] = {
            "id": f"cfg-{i:03d}",
            "destination": DESTINATIONS[i % 5],
            "entityConfig": {},
        }
        entity: dict[str, object] = {"excludedLineItemTypes": ["MINIMUM_SPEND"]} if i % 3 else {}
        if i < 50:  # allow lists: every account billed through one of these
            size = len(shuffled) // 50
            data["accountIds"] = shuffled[i * size : (i + 1) * size]
        elif i < 75:  # deny lists with a narrow expression
            data["restrictedAccountIds"] = rng.sample(account_ids, 20)
            country, _ = COUNTRIES[i % len(COUNTRIES)]
            entity["accountFilter"] = (
                f"customFields.country == {country} AND "
                f"customFields.tier == {TIERS[i % 3]} AND "
                f"customFields.seats > {rng.randint(300, 480)}"
            )
        else:  # expressions only
            country, _ = COUNTRIES[i % len(COUNTRIES)]
            entity["accountFilter"] = (
                f"address.country == {country} AND "
                f"(customFields.seats >= {rng.randint(440, 495)} OR "
                f"customFields.tier IN (platinum, diamond))"
            )
        entity["sortLineItemsBy"] = ["NONE", "SUBTOTAL", "AGGREGATION_ID"][i % 3]
        data["entityConfig"] = entity
        configs.append(parse_config(data))
    return configs


async def publish_inputs(settings: Settings, bills: int, lines: int) -> tuple[float, float]:
    rng = random.Random(5)
    accounts = make_accounts(ACCOUNTS)
    configs = make_configs([a.id for a in accounts], rng)
    producer = make_producer(settings.kafka_bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        for cfg in configs:
            await producer.send(
                settings.topics.name("integration_configs"), cfg.to_bytes(), key=cfg.id.encode()
            )
        for acc in accounts:
            await producer.send(
                settings.topics.name("accounts"), acc.to_bytes(), key=acc.id.encode()
            )
        templates = [
            b.to_bytes() for b in make_bills(accounts, ACCOUNTS, lines, embed_account=False)
        ]
        size = sum(len(t) for t in templates) / len(templates)
        started = time.monotonic()
        topic = settings.topics.name("bill_generated")
        pattern = re.compile(rb'"id":"bill-\d+"')
        for i in range(bills):
            value = pattern.sub(f'"id":"bill-{i:07d}"'.encode(), templates[i % ACCOUNTS], count=1)
            await producer.send(topic, value, key=f"bill-{i:07d}".encode())
        await producer.flush()
        return size, time.monotonic() - started
    finally:
        await producer.stop()


async def _metric_buckets(session: aiohttp.ClientSession) -> dict[float, float]:
    async with session.get(f"http://127.0.0.1:{HTTP_PORT}/metrics") as resp:
        text = await resp.text()
    out: dict[float, float] = {}
    for match in re.finditer(
        r'billsync_router_routing_latency_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)', text
    ):
        out[float(match.group(1))] = float(match.group(2))
    return out


def _quantile(buckets: dict[float, float], q: float) -> float:
    total = buckets[float("inf")]
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le
    return float("inf")


async def latency_phase(settings: Settings, count: int, rate: int) -> tuple[float, float]:
    """Steady load on a running router; quantiles from its latency histogram (bucket
    upper bounds)."""
    accounts = make_accounts(ACCOUNTS)
    templates = [b.to_bytes() for b in make_bills(accounts, 200, 20, seed=3, embed_account=False)]
    async with aiohttp.ClientSession() as session:
        before = await _metric_buckets(session)
        producer = make_producer(settings.kafka_bootstrap_servers, linger_ms=0)
        await producer.start()
        started = time.monotonic()
        for i in range(count):
            await producer.send(settings.topics.name("bill_generated"), templates[i % 200])
            delay = started + (i + 1) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await producer.flush()
        await producer.stop()
        await asyncio.sleep(2)
        after = await _metric_buckets(session)
    diff = {le: after[le] - before.get(le, 0) for le in after}
    return _quantile(diff, 0.5), _quantile(diff, 0.99)


async def topic_total(bootstrap: str, topics: list[str]) -> int:
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap))
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(t, p) for t in topics for p in cluster.partitions_for_topic(t) or ()]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        with contextlib.suppress(asyncio.CancelledError):  # aiokafka 0.14 on a quick stop
            await consumer.stop()


async def wait_health(timeout: float = 60) -> None:
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{HTTP_PORT}/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError("router did not become healthy")


@dataclass(frozen=True)
class Drain:
    rate: float  # bills/s from the first commit to the last
    peak_rss: int
    cpu: float  # process CPU seconds during the drain


async def passthrough(settings: Settings, bills: int, group_suffix: str) -> Drain:
    """The baseline process draining the whole backlog in its own consumer group."""
    group_prefix = settings.consumer_group_prefix + group_suffix
    base = spawn("benchmarks.passthrough", settings, BILLSYNC_CONSUMER_GROUP_PREFIX=group_prefix)
    assert base.stdout is not None
    base.stdout.readline()  # READY
    sampler = MemorySampler(base.pid)
    cpu0 = sampler.cpu_seconds()
    _, rate = await drain_rate(
        settings.kafka_bootstrap_servers,
        f"{group_prefix}-passthrough",
        {settings.topics.name("bill_generated")},
        bills,
        "pass-through" + group_suffix,
    )
    cpu = sampler.cpu_seconds() - cpu0
    peak = sampler.stop()
    base.kill()
    base.wait(10)
    return Drain(rate, peak, cpu)


async def two_routers(settings: Settings, total: int) -> tuple[float, int]:
    """Two router processes in one new consumer group over the same input (six partitions
    shared between them): their combined drain rate and their peak RSS summed."""
    group_prefix = settings.consumer_group_prefix + "-two"
    routers = [
        spawn(
            "services.router",
            settings,
            BILLSYNC_HTTP_PORT=str(HTTP_PORT + 1 + i),
            BILLSYNC_CONSUMER_GROUP_PREFIX=group_prefix,
        )
        for i in range(2)
    ]
    samplers = [MemorySampler(r.pid) for r in routers]
    try:
        _, rate = await drain_rate(
            settings.kafka_bootstrap_servers,
            f"{group_prefix}-router",
            {settings.topics.name("bill_generated")},
            total,
            "two routers",
        )
    finally:
        peaks = [s.stop() for s in samplers]
        for router in routers:
            router.kill()
            router.wait(10)
    return rate, sum(peaks)


async def main() -> None:
    bills = int(os.environ.get("BENCH_BILLS", "100000"))
    lines = 20
    latency_bills = 3000
    settings = bench_settings("router")
    await ensure_topics(settings)
    print(f"publishing {bills:,} bills of {lines} lines and 100 configurations...", file=sys.stderr)
    size, produce_s = await publish_inputs(settings, bills, lines)
    source = {settings.topics.name("bill_generated")}
    bs = settings.kafka_bootstrap_servers

    before = await passthrough(settings, bills, "")
    router = spawn("services.router", settings, BILLSYNC_HTTP_PORT=str(HTTP_PORT))
    router_mem = MemorySampler(router.pid)
    await wait_health()  # tables loaded
    router_cpu0 = router_mem.cpu_seconds()
    _, router_rate = await drain_rate(
        bs, f"{settings.consumer_group_prefix}-router", source, bills, "router"
    )
    router_cpu = router_mem.cpu_seconds() - router_cpu0
    dispatch_topics = [
        settings.topics.dispatch(f) for f in ("stripe", "paddle", "salesforce", "xero")
    ]
    # The first pass-through wrote one record per bill into dispatch.xero; the rest is the
    # router's.
    dispatched = await topic_total(bs, dispatch_topics) - bills
    p50, p99 = await latency_phase(settings, count=latency_bills, rate=500)
    router_peak = router_mem.stop()
    router.kill()
    router.wait(10)
    # The baseline again on the same backlog: the machine's load drifts, and the mean of
    # a run before and a run after the router brackets it.
    after = await passthrough(settings, bills, "-again")
    base_rate = (before.rate + after.rate) / 2
    two_rate, two_peak = await two_routers(settings, bills + latency_bills)
    await delete_topics_with_prefix(bs, settings.topics.prefix)

    print("\nRouter benchmark (local single-node broker, 2 cores, 5,000 accounts)")
    print(
        f"  input: {bills:,} bills x {lines} lines (avg {size / 1024:.1f} KiB), "
        f"100 configurations; produced in {produce_s:.1f}s"
    )
    print("  rates from each group's first commit to its last (group join left out)")
    print(
        f"  pass-through baseline : {base_rate:10,.0f} bills/s   peak RSS "
        f"{max(before.peak_rss, after.peak_rss) / 2**20:6.0f} MiB   (mean of "
        f"{before.rate:,.0f} before and {after.rate:,.0f} after the router)"
    )
    print(
        f"  router                : {router_rate:10,.0f} bills/s   peak RSS "
        f"{router_peak / 2**20:6.0f} MiB"
    )
    print(f"  ratio router/baseline : {router_rate / base_rate:10.0%}   (target >= 50%)")
    print(
        f"  process CPU per bill  : pass-through {before.cpu / bills * 1e6:.0f} us, "
        f"router {router_cpu / bills * 1e6:.0f} us (during the drain)"
    )
    print(
        f"  two routers, one group: {two_rate:10,.0f} bills/s   peak RSS "
        f"{two_peak / 2**20:6.0f} MiB (both)   ratio {two_rate / base_rate:.0%}"
    )
    print(f"  dispatches per bill   : {dispatched / bills:10.2f}")
    print(
        f"  routing latency at 500 bills/s: p50 <= {p50 * 1000:.0f} ms, "
        f"p99 <= {p99 * 1000:.0f} ms (histogram bucket bounds)"
    )


if __name__ == "__main__":
    asyncio.run(main())
