"""`make soak`: the Stripe sink under faults, kill -9 and rebalances (issue 7, "Proof").

Bills of mixed currencies over two configurations go to the local Stripe in live mode
(100 requests/s) with 20% 5xx that Stripe saves under their idempotency keys and 5% of
answers dropped after the write committed. Two sink processes start together (a
rebalance); once a third of the invoices exist one of them is killed with SIGKILL, and a
third sink joins (another rebalance). The control plane ingests the run history.

Printed: bills in, invoices expected, found, missing, doubled, half-written (a draft, or
no lines, where a finalized invoice is expected), final run statuses, runs whose status
in the control plane's API differs from their final record, the committed offsets
against the partition ends, and the peak requests per second offered and admitted
against the limit.
Env: SOAK_BILLS (1500 per configuration), SOAK_TIMEOUT (600 s), SOAK_SEED (7)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from benchmarks.common import bench_settings, spawn
from fakes.stripe import FakeStripe
from services.control.main import ControlPlane
from services.control.settings import ControlSettings
from services.router.envelopes import EnvelopeBuilder
from shared.contracts import (
    IntegrationConfig,
    IntegrationRun,
    ResultRecordAdapter,
    Trigger,
    parse_config,
)
from shared.credentials import CredentialAdapter, CredentialCipher, generate_key
from shared.credentials.store import publish_credential, seal
from shared.kafka.client_options import kafka_options
from shared.kafka.producer import make_producer
from shared.kafka.ranges import read_ranges, topic_partitions
from shared.kafka.topics import delete_topics_with_prefix, ensure_topics
from shared.sampledata import make_accounts, make_bills
from shared.settings import Settings
from shared.sinks.partitioning import dispatch_key

KEY = "sk_live_soak"
LIMIT = 100  # Stripe's live-mode requests/s, enforced by the local Stripe
ACCOUNTS = 200
CONFIGS = ("cfg-soak-a", "cfg-soak-b")


async def prepare(settings: Settings, fake: FakeStripe, cipher: CredentialCipher) -> list[Any]:
    await ensure_topics(settings)
    for account in make_accounts(ACCOUNTS):
        fake.seed_customer(account.id, currency=(account.currency or "usd").lower(), livemode=True)
    configs = [
        parse_config({"id": cid, "destination": "STRIPE", "integrationCredentialsId": "cred"})
        for cid in CONFIGS
    ]
    cred = CredentialAdapter.validate_python({"id": "cred", "type": "STRIPE", "apiKey": KEY})
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await publish_credential(producer, settings.topics.name("credentials"), seal(cred, cipher))
        for config in configs:
            await producer.send_and_wait(
                settings.topics.name("integration_configs"),
                config.to_bytes(),
                key=config.id.encode(),
            )
    finally:
        await producer.stop()
    return configs


async def publish(settings: Settings, configs: list[IntegrationConfig], count: int) -> int:
    bills = make_bills(make_accounts(ACCOUNTS), count, 5, embed_account=True)
    builder = EnvelopeBuilder()
    producer = make_producer(settings.kafka_bootstrap_servers, linger_ms=20)
    await producer.start()
    sent = 0
    try:
        for i, bill in enumerate(bills):
            assert bill.account is not None
            for config, _, body in builder.build(
                bill, bill.account, configs, Trigger.GENERATED, f"soak/0/{i}"
            ):
                # Keyed as the router keys them: by credential (one instance owns its limit).
                await producer.send(
                    settings.topics.dispatch("stripe"), body, key=dispatch_key(config).encode()
                )
                sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    found = await topic_partitions(consumer, topic, attempts=50)
    if not found:
        raise RuntimeError(f"no metadata for {topic}")
    return found


async def final_runs(settings: Settings) -> dict[str, IntegrationRun]:
    """The last record of every run on integration-results (the sink's own final word)."""
    topic = settings.topics.name("integration_results")
    consumer = AIOKafkaConsumer(
        **kafka_options(settings.kafka_bootstrap_servers),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    runs: dict[str, IntegrationRun] = {}
    try:
        tps = await partitions(consumer, topic)
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        async for records in read_ranges(consumer, {tp: (begin[tp], end[tp]) for tp in tps}):
            for rec in records:
                item = ResultRecordAdapter.validate_json(rec.value or b"")
                if isinstance(item, IntegrationRun):
                    runs[item.id] = item
    finally:
        await consumer.stop()
    return runs


async def offsets(settings: Settings, group: str) -> tuple[int, int]:
    """(committed, end) summed over the dispatch topic's partitions."""
    topic = settings.topics.dispatch("stripe")
    consumer = AIOKafkaConsumer(**kafka_options(settings.kafka_bootstrap_servers), group_id=group)
    await consumer.start()
    try:
        tps = await partitions(consumer, topic)
        end = await consumer.end_offsets(tps)
        committed = [(await consumer.committed(tp)) or 0 for tp in tps]
        return sum(committed), sum(end.values())
    finally:
        await consumer.stop()


async def stored_statuses(plane: ControlPlane, token: str) -> dict[str, str]:
    """Every run's status as the control plane's API reports it."""
    out: dict[str, str] = {}
    params: dict[str, str] = {"pageSize": "200"}
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        while True:
            url = f"{plane.base_url}/integrationruns"
            async with http.get(url, params=params, headers=headers) as resp:
                page = await resp.json()
            out.update({r["id"]: r["status"] for r in page["data"]})
            if not page.get("nextToken"):
                return out
            params["nextToken"] = page["nextToken"]


def invoice_figures(fake: FakeStripe, expected: set[tuple[str, str]]) -> dict[str, int]:
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for inv in fake.invoices(livemode=True):
        meta = inv.get("metadata") or {}
        pair = (str(meta.get("billsync_config_id")), str(meta.get("billsync_bill_id")))
        by_pair.setdefault(pair, []).append(inv)
    live = {p: [i for i in v if i["status"] != "void"] for p, v in by_pair.items()}
    half = [
        i for v in by_pair.values() for i in v if i["status"] == "draft" or not i["lines"]["data"]
    ]
    return {
        "expected": len(expected),
        "found": sum(1 for p in expected if live.get(p)),
        "missing": sum(1 for p in expected if not live.get(p)),
        "doubled": sum(1 for v in live.values() if len(v) > 1),
        "half_written": len(half),
        "strays": sum(1 for p in by_pair if p not in expected),
    }


async def soak(bills: int, timeout: float, seed: int) -> None:
    settings = bench_settings("soak")
    key = generate_key()
    settings = settings.model_copy(update={"credentials_key": SecretStr(key)})
    fake = FakeStripe(
        api_keys=(KEY,),
        rate_limits={"live_per_second": LIMIT, "endpoint_per_second": LIMIT},
        faults={
            "seed": seed,
            "latency_ms": 10,
            "error_rate": 0.2,
            "errors_replayed": True,
            "drop_after_commit_rate": 0.05,
        },
    )
    url = await fake.start()
    token = secrets.token_hex(16)
    tmp = tempfile.TemporaryDirectory(prefix="billsync-soak-")
    plane = ControlPlane(
        settings,
        ControlSettings(
            port=0,
            admin_tokens=[SecretStr(token)],
            database_url=f"sqlite+aiosqlite:///{Path(tmp.name) / 'soak.db'}",
        ),
    )
    env = {
        "BILLSYNC_STRIPE_API_BASE": url,
        "BILLSYNC_CREDENTIALS_KEY": key,
        "BILLSYNC_SINK_MAX_ATTEMPTS": "12",
        "BILLSYNC_SINK_RETRY_BASE_DELAY": "0.2",
        "BILLSYNC_SINK_RETRY_MAX_DELAY": "5",
    }
    sinks: list[Any] = []
    try:
        configs = await prepare(settings, fake, CredentialCipher(key))
        await plane.start()
        sent = await publish(settings, configs, bills)
        expected = {
            (c.id, b.id) for c in configs for b in make_bills(make_accounts(ACCOUNTS), bills, 5)
        }
        print(
            f"soak: {sent:,} envelopes ({bills:,} bills x {len(configs)} configurations)",
            file=sys.stderr,
        )
        started = time.monotonic()
        sinks = [spawn("services.stripe_sink", settings, **env) for _ in range(2)]
        while len(fake.invoices(livemode=True)) < len(expected) // 3:  # noqa: ASYNC110
            await asyncio.sleep(0.5)  # the fake has no event for it
        sinks[1].send_signal(signal.SIGKILL)
        sinks[1].wait(10)
        print(f"  kill -9 of sink 2 after {time.monotonic() - started:.0f} s", file=sys.stderr)
        sinks.append(spawn("services.stripe_sink", settings, **env))
        group = f"{settings.consumer_group_prefix}-stripe-sink"
        deadline = started + timeout
        runs: dict[str, IntegrationRun] = {}
        while time.monotonic() < deadline:
            await asyncio.sleep(5)
            runs = await final_runs(settings)
            final = sum(1 for r in runs.values() if r.status.is_final)
            committed, end = await offsets(settings, group)
            print(
                f"  {time.monotonic() - started:.0f} s: {final:,}/{sent:,} runs final, "
                f"committed {committed:,}/{end:,}",
                file=sys.stderr,
            )
            if final >= sent and committed >= end:
                break
        elapsed = time.monotonic() - started
        # The control plane has ingested everything once its API shows every run.
        stored: dict[str, str] = {}
        for _ in range(60):
            stored = await stored_statuses(plane, token)
            if len(stored) >= len(runs):
                break
            await asyncio.sleep(1)
        committed, end = await offsets(settings, group)
        statuses = Counter(r.status.value for r in runs.values())
        differ = sum(1 for rid, r in runs.items() if stored.get(rid) != r.status.value)
        figures = invoice_figures(fake, expected)
        stats = fake.stats
        print(
            f"soak ({elapsed:.0f} s, {stats['requests']:,} Stripe requests, "
            f"{stats['injected_errors']:,} injected 5xx, {stats['dropped_after_commit']:,} "
            f"dropped after commit, {stats['idempotent_replays']:,} replays, "
            f"1 kill -9, 3 sinks):\n"
            f"  bills in {sent:,}; invoices expected {figures['expected']:,}, "
            f"found {figures['found']:,}, missing {figures['missing']}, doubled "
            f"{figures['doubled']}, half-written {figures['half_written']}, "
            f"strays {figures['strays']}\n"
            f"  final runs {dict(statuses)}; stored status differs from the final one: "
            f"{differ}\n"
            f"  committed offsets {committed:,} of {end:,}\n"
            f"  peak requests/s offered {stats['max_offered_per_second']}, admitted "
            f"{stats['max_admitted_per_second']} (limit {LIMIT}), 429s {stats['rate_limited']}"
        )
    finally:
        for proc in sinks:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        await plane.stop()
        await fake.stop()
        tmp.cleanup()
        await delete_topics_with_prefix(settings.kafka_bootstrap_servers, settings.topics.prefix)


if __name__ == "__main__":
    asyncio.run(
        soak(
            int(os.environ.get("SOAK_BILLS", "1500")),
            float(os.environ.get("SOAK_TIMEOUT", "600")),
            int(os.environ.get("SOAK_SEED", "7")),
        )
    )
