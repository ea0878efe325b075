"""`make bench-paddle`: the Paddle sink (a real `services.paddle_sink` process) against the
local Paddle.

(a) the fake unlimited, a backlog of new bills: Paddle calls per bill (target 1);
(b) the fake enforcing its per-IP limit (LIMIT requests per WINDOW seconds, 429 and a
    block when exceeded) and the sink told the same limit (BILLSYNC_PADDLE_RATE_LIMIT),
    a backlog of bills larger than several windows: the share of the limit used
    (target >= 90%) and the 429 count (target 0).
Paddle's limit is 240 a minute; the window is shortened (default 10 s) so the run takes
about a minute, the ratio is the same. Env: BENCH_A_BILLS (300), BENCH_B_BILLS (1140),
BENCH_PADDLE_LIMIT (240), BENCH_PADDLE_WINDOW (10), BENCH_ONLY (a subset of "ab")."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from benchmarks.common import bench_settings, spawn, wait_committed
from fakes.paddle import FakePaddle
from services.router.envelopes import EnvelopeBuilder
from shared.contracts import Account, Bill, ExternalMapping, LineItem, Trigger, parse_config
from shared.credentials import CredentialAdapter, CredentialCipher, generate_key
from shared.credentials.store import publish_credential, seal
from shared.kafka.producer import make_producer
from shared.kafka.topics import delete_topics_with_prefix, ensure_topics
from shared.settings import Settings

KEY = "pdl_sdbx_apikey_bench"
ACCOUNTS = 50


async def prepare(settings: Settings, fake: FakePaddle, cipher: CredentialCipher) -> Any:
    """The configuration, the credential and each account's Customer/Address mappings."""
    await ensure_topics(settings)
    config = parse_config(
        {
            "id": "cfg-bench",
            "destination": "PADDLE_SANDBOX",
            "integrationCredentialsId": "cred-bench",
            "entityConfig": {"useExternalMappingAccountCode": True},
        }
    )
    cred = CredentialAdapter.validate_python({"id": "cred-bench", "type": "PADDLE", "apiKey": KEY})
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await publish_credential(producer, settings.topics.name("credentials"), seal(cred, cipher))
        await producer.send_and_wait(
            settings.topics.name("integration_configs"), config.to_bytes(), key=config.id.encode()
        )
        for n in range(ACCOUNTS):
            ids = fake.seed_customer(name=f"Bench {n}")
            for table, key in (("Customer", "customer_id"), ("Address", "address_id")):
                mapping = ExternalMapping.model_validate(
                    {
                        "id": f"map-{n}-{table}",
                        "externalSystem": "Paddle",
                        "externalTable": table,
                        "externalId": ids[key],
                        "m3terEntity": "Account",
                        "m3terId": f"acc-{n}",
                    }
                )
                await producer.send(
                    settings.topics.name("external_mappings"),
                    mapping.to_bytes(),
                    key=mapping.id.encode(),
                )
        await producer.flush()
    finally:
        await producer.stop()
    return config


def make_bill(i: int) -> Bill:
    n = i % ACCOUNTS
    lines = [
        LineItem.model_validate(
            {
                "id": f"li-{i}-{j}",
                "lineItemType": "USAGE",
                "description": f"Usage {j}",
                "quantity": str(j + 1),
                "subtotal": f"{(j + 1) * 3}.00",
            }
        )
        for j in range(5)
    ]
    return Bill(
        id=f"bill-{i:07d}",
        version=1,
        account_id=f"acc-{n}",
        currency="USD",
        line_items=lines,
        account=Account(id=f"acc-{n}", account_name=f"Bench {n}", currency="USD"),
    )


async def backlog(settings: Settings, config: Any, count: int) -> None:
    builder = EnvelopeBuilder()
    producer = make_producer(settings.kafka_bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        for i in range(count):
            bill = make_bill(i)
            assert bill.account is not None
            [(_, _, body)] = builder.build(
                bill, bill.account, [config], Trigger.GENERATED, f"bench/0/{i}"
            )
            await producer.send(settings.topics.dispatch("paddle"), body, key=bill.id.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def run(bills: int, limit: int | None, window: float, label: str) -> dict[str, float]:
    settings = bench_settings(f"paddle-{label}")
    key = generate_key()
    limits = (
        {"enabled": True, "per_window": limit, "window_seconds": window, "block_seconds": window}
        if limit
        else {"enabled": False}
    )
    fake = FakePaddle([KEY], rate_limits=limits)
    url = await fake.start()
    try:
        config = await prepare(settings, fake, CredentialCipher(key))
        await backlog(settings, config, bills)
        env = {
            "BILLSYNC_PADDLE_SANDBOX_API_BASE": url,
            "BILLSYNC_CREDENTIALS_KEY": key,
            "BILLSYNC_SINK_RETRY_BASE_DELAY": "0.2",
            "BILLSYNC_PADDLE_RATE_LIMIT": f"{limit or 100000}/{window}",
        }
        sink = spawn("services.paddle_sink", settings, **env)
        while fake.stats["requests"] == 0:  # noqa: ASYNC110 (the fake has no event for it)
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await wait_committed(
            settings.kafka_bootstrap_servers,
            f"{settings.consumer_group_prefix}-paddle-sink",
            {settings.topics.dispatch("paddle")},
            bills,
            f"({label})",
        )
        elapsed = time.monotonic() - started
        sink.kill()
        stats = fake.stats
        admitted = stats["requests"] - stats["rate_limited"]
        transactions = len(fake.transactions())
        out = {
            "elapsed": elapsed,
            "admitted": admitted,
            "calls_per_bill": admitted / bills,
            "transactions": transactions,
            "429": stats["rate_limited"],
            "max_in_window": stats["max_in_window"],
        }
        if limit:
            # The rate between the first and the last admitted request, against the limit
            # (the framework's limiter spaces calls evenly over each window).
            span = stats["last_admitted_at"] - stats["first_admitted_at"]
            out["rate"] = (admitted - 1) / span
            out["share"] = out["rate"] / (limit / window)
        return out
    finally:
        await fake.stop()
        await delete_topics_with_prefix(settings.kafka_bootstrap_servers, settings.topics.prefix)


async def main() -> None:
    only = os.environ.get("BENCH_ONLY", "ab")
    limit = int(os.environ.get("BENCH_PADDLE_LIMIT", "240"))
    window = float(os.environ.get("BENCH_PADDLE_WINDOW", "10"))
    if "a" in only:
        bills = int(os.environ.get("BENCH_A_BILLS", "300"))
        a = await run(bills, None, 60.0, "a")
        print(
            f"(a) {bills} new bills, fake unlimited: {a['calls_per_bill']:.2f} Paddle calls per "
            f"bill (target 1), {a['transactions']} transactions, {bills / a['elapsed']:.1f} "
            "bills/s"
        )
    if "b" in only:
        bills = int(os.environ.get("BENCH_B_BILLS", "1140"))
        b = await run(bills, limit, window, "b")
        print(
            f"(b) {bills}-bill backlog, fake limited to {limit} requests per {window:g} s: "
            f"{b['rate']:.1f} requests/s over {b['elapsed']:.0f} s = {b['share']:.0%} of the "
            f"limit (target >= 90%), {b['429']:.0f} x 429 (target 0), "
            f"at most {b['max_in_window']:.0f} in one window, {b['calls_per_bill']:.2f} calls "
            "per bill"
        )
        if b["429"]:
            print("  429s seen: the sink reached the limit", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
