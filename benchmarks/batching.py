"""Batch-path benchmark: the framework's batching destination against the local batching
provider (fakes/batching), through the real runner and broker. Figures, not assertions.

(a) backlog, provider limited to 60 calls a minute and 5 at once per tenant: invoices per
    call, calls admitted against the limit (share of the limit used), 429s, and invoices
    per minute against the single path (batches of one) measured in the same run.
(b) two sink instances (one consumer group) against a provider limited to 25 requests/s
    for one credential used by two configurations: combined admitted rate and 429s, with
    dispatches keyed by configuration (each instance spends the limit on its own) and by
    credential (`dispatch_key`: one instance owns the credential).

    python -m benchmarks.batching [--window 120] [--pair-window 30] [--only a|b]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import SecretStr

from benchmarks.common import bench_settings
from fakes.batching import FakeBatching
from fakes.batching.destination import BatchingDestination
from shared.contracts import DispatchEnvelope, IntegrationConfig, Trigger, dispatch_id, parse_config
from shared.credentials import CredentialCipher, XeroCredential, generate_key
from shared.credentials.store import publish_credential, seal
from shared.kafka.producer import make_producer
from shared.kafka.topics import delete_topics_with_prefix, ensure_topics
from shared.logging import configure_logging
from shared.sampledata import make_accounts, make_bills
from shared.settings import Settings
from shared.sinks.batching import BatchPolicy
from shared.sinks.limits import ProviderLimits, Scope, Window
from shared.sinks.options import SinkOptions
from shared.sinks.partitioning import dispatch_key
from shared.sinks.runner import SinkRunner, running_sink

OPTIONS = SinkOptions(retry_base_delay=0.2, retry_max_delay=5.0, max_attempts=20)


def credential(cred_id: str = "cred-bench", tenant: str = "tenant-bench") -> XeroCredential:
    return XeroCredential(
        id=cred_id,
        client_id="client-1",
        client_secret=SecretStr("secret-1"),
        tenant_id=tenant,
        access_token=SecretStr("tok-test"),
    )


def config(config_id: str, cred_id: str = "cred-bench") -> IntegrationConfig:
    return parse_config(
        {"id": config_id, "destination": "XERO", "integrationCredentialsId": cred_id}
    )


async def prepare(settings: Settings, cipher: CredentialCipher) -> None:
    await ensure_topics(settings)
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await publish_credential(
            producer, settings.topics.name("credentials"), seal(credential(), cipher)
        )
    finally:
        await producer.stop()


async def backlog(
    settings: Settings, configs: list[IntegrationConfig], count: int, by_credential: bool
) -> None:
    accounts = make_accounts(50)
    templates = make_bills(accounts, min(count, 200), 3, embed_account=True)
    producer = make_producer(settings.kafka_bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        for i in range(count):
            cfg = configs[i % len(configs)]
            bill = templates[i % len(templates)].model_copy(update={"id": f"bill-{i:06d}"})
            assert bill.account is not None
            envelope = DispatchEnvelope(
                dispatch_id=dispatch_id(bill.id, 1, cfg.id, 1, Trigger.GENERATED),
                trigger=Trigger.GENERATED,
                integration_config_id=cfg.id,
                integration_config_version=1,
                integration_config=cfg,
                bill=bill,
                account=bill.account,
                routed_at="2026-11-29T00:00:00Z",
            )
            key = dispatch_key(cfg) if by_credential else cfg.id
            await producer.send(
                settings.topics.dispatch("xero"), envelope.to_bytes(), key=key.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def namespace(name: str) -> AsyncIterator[tuple[Settings, CredentialCipher]]:
    key = generate_key()
    settings = bench_settings(name).model_copy(update={"credentials_key": SecretStr(key)})
    try:
        yield settings, CredentialCipher(SecretStr(key))
    finally:
        await delete_topics_with_prefix(settings.kafka_bootstrap_servers, settings.topics.prefix)


async def measure(
    fake: FakeBatching,
    runners: list[SinkRunner],
    window: float,
    total: int,
    produce: Callable[[], Awaitable[None]],
) -> dict[str, float]:
    """Start the sinks, wait until the group has settled (every partition assigned, each
    instance holding some), produce the backlog, then measure from the provider's first
    call for `window` seconds (or until every bill is delivered)."""
    async with contextlib.AsyncExitStack() as stack:
        for runner in runners:
            await stack.enter_async_context(running_sink(runner))
        while not settled(runners):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await produce()
        while fake.stats["requests"] == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        started = time.monotonic()
        while time.monotonic() - started < window:
            if len(fake.invoices) >= total:
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        calls = sum(1 for t in fake.stats["admitted_at"] if t >= started - 1)
        result = {
            "seconds": elapsed,
            "calls": float(calls),
            "invoices": float(len(fake.invoices)),
            "items": float(fake.stats["items"]),
            "rate_limited": float(fake.stats["rate_limited"]),
            "max_concurrent": float(fake.stats["max_concurrent"]),
        }
    return result


def settled(runners: list[SinkRunner]) -> bool:
    held = [sum(1 for p in range(6) if r.consumer.owns(p)) for r in runners]
    return sum(held) == 6 and all(held)


async def scenario_a(window: float, bills: int) -> dict[str, Any]:
    limits = ProviderLimits((Window(60, 60.0),), concurrent=5, daily=5000, scope=Scope.TENANT)
    out: dict[str, Any] = {}
    for label, size, seconds in (("single", 1, min(window, 60.0)), ("batched", 50, window)):
        fake = FakeBatching(window_calls=60, window_seconds=60, concurrent=5, latency=0.2)
        url = await fake.start()
        try:
            async with namespace(f"batch-a-{label}") as (settings, cipher):
                await prepare(settings, cipher)
                dest = BatchingDestination(url, policy=BatchPolicy(size, 0.5), limits=limits)
                runner = SinkRunner(settings, dest, OPTIONS, cipher)
                print(f"  (a) {label}: {seconds:.0f}s window", file=sys.stderr)
                out[label] = await measure(
                    fake,
                    [runner],
                    seconds,
                    bills,
                    functools.partial(backlog, settings, [config("cfg-bench")], bills, True),
                )
        finally:
            await fake.stop()
    return out


async def scenario_b(window: float, bills: int) -> dict[str, Any]:
    limits = ProviderLimits((Window(25, 1.0),), scope=Scope.CREDENTIAL)
    out: dict[str, Any] = {}
    for label, by_credential in (("keyed by config", False), ("keyed by credential", True)):
        fake = FakeBatching(window_calls=25, window_seconds=1.0, concurrent=100, latency=0.02)
        url = await fake.start()
        try:
            async with namespace(f"batch-b-{int(by_credential)}") as (settings, cipher):
                await prepare(settings, cipher)
                configs = [config(f"cfg-pair-{i}") for i in range(4)]
                runners = [
                    SinkRunner(
                        settings,
                        BatchingDestination(url, policy=BatchPolicy(1, 0.0), limits=limits),
                        OPTIONS,
                        cipher,
                    )
                    for _ in range(2)
                ]
                print(f"  (b) two instances, {label}: {window:.0f}s window", file=sys.stderr)
                out[label] = await measure(
                    fake,
                    runners,
                    window,
                    bills,
                    functools.partial(backlog, settings, configs, bills, by_credential),
                )
        finally:
            await fake.stop()
    return out


def report_a(a: dict[str, Any]) -> None:
    print("(a) backlog, provider limit 60 calls/min and 5 concurrent per tenant")
    for label, r in a.items():
        minutes = r["seconds"] / 60
        print(
            f"  {label:8} window {r['seconds']:6.1f}s  calls {r['calls']:5.0f}  "
            f"invoices {r['invoices']:6.0f}  invoices/call {r['items'] / max(1, r['calls']):5.1f}  "
            f"share of limit {r['calls'] / (60 * minutes):6.1%}  429s {r['rate_limited']:.0f}  "
            f"invoices/min {r['invoices'] / minutes:7.1f}  "
            f"peak concurrent {r['max_concurrent']:.0f}"
        )
    if "single" in a and "batched" in a:
        ratio = (a["batched"]["invoices"] / a["batched"]["seconds"]) / max(
            1e-9, a["single"]["invoices"] / a["single"]["seconds"]
        )
        print(f"  batched / single invoices per minute: {ratio:.1f}x")


def report_b(b: dict[str, Any]) -> None:
    print("(b) two instances, one credential, provider limit 25 requests/s")
    for label, r in b.items():
        rate = r["calls"] / r["seconds"]
        print(
            f"  {label:20} window {r['seconds']:5.1f}s  admitted {rate:5.1f}/s "
            f"({rate / 25:5.1%} of the limit)  429s {r['rate_limited']:.0f}"
        )


async def main() -> None:
    configure_logging("WARNING")
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=120.0, help="(a) batched window, s")
    parser.add_argument("--pair-window", type=float, default=30.0, help="(b) window, s")
    parser.add_argument("--only", choices=["a", "b"])
    args = parser.parse_args()
    if args.only in (None, "a"):
        report_a(await scenario_a(args.window, 6000))
    if args.only in (None, "b"):
        report_b(await scenario_b(args.pair_window, int(args.pair_window * 60)))


if __name__ == "__main__":
    asyncio.run(main())
