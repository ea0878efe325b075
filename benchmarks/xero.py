"""Xero benchmark: a backlog of bills for one organisation, through the Xero destination on
the framework's batch path (`shared.sinks.batching.BatchPath`, what the runner calls for a
batch destination) against the local Xero with Xero's real per-tenant limits: 60 calls a
minute, 5 at once, 5,000 a day, and 0.3 s per call. Figures, not assertions.

Scaled: the rate is Xero's (60 calls a minute) but its window is 20 s (20 calls per 20 s,
in the local Xero and in the sink's limits alike), so that the ~2-minute run spans several
windows and the share of the limit is not dominated by the burst a fresh window allows;
the concurrent (5) and daily (5,000) limits are Xero's. 5,000 bills in batches of 50 are
100 calls: about 100 s at that rate. Printed: invoices per call (target >= 40), the share
of the limit used (calls in the run's complete windows over what they allow; target >=
90%), 429s, members whose batch timed out (the runner's call timeout applies; it starts
once the limiter admits a call, so none should), and the peak memory of the sink's
process (the local Xero runs in its own process, as Xero is remote), with the same
backlog sent one bill per call (the single path) for `--single-window` seconds beside it.

    python -m benchmarks.xero [--bills 5000] [--single-window 75] [--timeout 120]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from pydantic import SecretStr

from benchmarks.common import ROOT, MemorySampler
from services.xero_sink.client import XeroApi
from services.xero_sink.destination import XeroDestination
from shared.contracts import (
    DispatchEnvelope,
    IntegrationConfig,
    Trigger,
    dispatch_id,
    parse_config,
)
from shared.credentials import Credential, XeroCredential
from shared.sampledata import make_accounts, make_bills
from shared.sinks.batching import BatchPath, BatchPolicy, CallLimiter
from shared.sinks.destination import DeliveryRequest
from shared.sinks.errors import ProviderTimeoutError
from shared.sinks.limits import ProviderLimits, QuotaLimiter, Scope, Window
from shared.sinks.options import SinkOptions

TENANT = "0be1c4a0-0000-4000-8000-00000000be4c"
CLIENT, CUSTOM, SECRET = "bench-client", "bench-custom", "bench-secret"
LATENCY = 0.3  # seconds per Xero call
WINDOW = 20.0  # Xero's minute, scaled (same rate: 60 calls a minute)
# The sink's side: the destination's guard of one second in 61, scaled (0.33 s in 20).
LIMITS = ProviderLimits(
    (Window(int(WINDOW), WINDOW * 61 / 60),), concurrent=5, daily=5000, scope=Scope.TENANT
)


def requests_for(config: IntegrationConfig, count: int) -> list[DeliveryRequest]:
    accounts = make_accounts(50)
    templates = make_bills(accounts, min(count, 200), 6, embed_account=True)
    out = []
    for i in range(count):
        bill = templates[i % len(templates)].model_copy(
            update={"id": f"bill-{i:06d}", "currency": "USD", "due_date": dt.date(2026, 12, 1)}
        )
        assert bill.account is not None
        envelope = DispatchEnvelope(
            dispatch_id=dispatch_id(bill.id, 1, config.id, 1, Trigger.GENERATED),
            trigger=Trigger.GENERATED,
            integration_config_id=config.id,
            integration_config_version=1,
            integration_config=config,
            bill=bill,
            account=bill.account,
            routed_at="2026-11-29T00:00:00Z",
        )
        out.append(DeliveryRequest(envelope, config, bill.account_id, None, False, 1, f"r{i}"))
    return out


@contextlib.asynccontextmanager
async def local_xero() -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """The local Xero in its own process, as Xero is remote (its CPU is not the sink's)."""
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        [
            sys.executable,
            "-m",
            "fakes.xero",
            "--port",
            "0",
            "--tenant",
            TENANT,
            "--client-id",
            CLIENT,
            "--client-secret",
            SECRET,
            "--custom-client-id",
            CUSTOM,
            "--custom-client-secret",
            SECRET,
            "--minute-limit",
            str(int(WINDOW)),
            "--window-seconds",
            str(WINDOW),
            "--latency-ms",
            str(LATENCY * 1000),
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
        yield json.loads(line)["url"], proc
    finally:
        proc.terminate()
        proc.wait(10)


async def stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/_fake/stats?times=1") as resp:
        answer: dict[str, Any] = await resp.json()
        return answer


async def run(size: int, bills: int, window: float, timeout: float) -> dict[str, Any]:
    async with local_xero() as (url, _):
        # A custom connection: the sink fetches its own token (client credentials).
        credential = XeroCredential(
            id="cred-bench", client_id=CUSTOM, client_secret=SecretStr(SECRET), tenant_id=TENANT
        )
        destination = XeroDestination(
            url, token_url=f"{url}/connect/token", policy=BatchPolicy(size, 1.0), limits=LIMITS
        )
        config = parse_config(
            {"id": "cfg-bench", "destination": "XERO", "integrationCredentialsId": credential.id}
        )
        client = destination.make_client(config.destination, credential)
        limiter = QuotaLimiter(LIMITS)

        def client_for(_: IntegrationConfig, __: Credential) -> tuple[XeroApi, CallLimiter]:
            return client, limiter

        # The runner's call timeout: it starts once the limiter admits a batch's call, so
        # batches queued behind the backlog are not timed out before they are sent.
        path = BatchPath(destination, client_for, timeout)
        requests = requests_for(config, bills)
        sampler = MemorySampler(os.getpid())
        timeouts = 0

        async def one(request: DeliveryRequest) -> None:
            nonlocal timeouts
            for _ in range(
                20
            ):  # a whole-batch failure (a 429) retries the bill, as the runner does
                try:
                    await path.deliver(request, credential)
                    return
                except ProviderTimeoutError:
                    timeouts += 1
                    await asyncio.sleep(1.0)
                except Exception:  # noqa: BLE001 - counted by the local Xero; try again
                    await asyncio.sleep(1.0)

        tracemalloc.start()
        started = time.monotonic()
        tasks = [asyncio.create_task(one(r)) for r in requests]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=window)
        except TimeoutError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        seconds = time.monotonic() - started
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peak_rss = sampler.stop()
        await path.close()
        await client.close()
        counted = await stats(url)
    admitted = sorted(float(t) for t in counted["admitted_at"])
    return {
        "seconds": seconds,
        "calls": float(len(admitted)),
        "fullness": fullness(admitted),
        "invoices": float(counted["documents"]),
        "rate_limited": float(sum(counted["rate_limited"].values())),
        "problems": counted["rate_limited"],
        "max_concurrent": float(counted["max_concurrent"]),
        "timeouts": float(timeouts),
        "traced_peak": float(traced_peak),
        "rss": float(peak_rss),
    }


def fullness(admitted: list[float]) -> float:
    """The share of the limit used: the calls admitted in the run's complete windows
    (counted from the first call) over what those windows allow."""
    if not admitted:
        return 0.0
    complete = int((admitted[-1] - admitted[0]) // WINDOW)
    if complete == 0:
        return len(admitted) / WINDOW
    end = admitted[0] + complete * WINDOW
    return sum(1 for t in admitted if t < end) / (WINDOW * complete)


def report(label: str, r: dict[str, Any]) -> None:
    print(
        f"  {label:8} {r['seconds']:6.1f}s  calls {r['calls']:4.0f}  invoices {r['invoices']:5.0f}"
        f"  invoices/call {r['invoices'] / max(1.0, r['calls']):5.1f}"
        f"  share of 60/min {r['fullness']:6.1%}"
        f"  429s {r['rate_limited']:.0f} {r['problems']}  peak concurrent {r['max_concurrent']:.0f}"
        f"  timed-out members {r['timeouts']:.0f}"
        f"  sink peak: Python {r['traced_peak'] / 2**20:5.1f} MiB, RSS {r['rss'] / 2**20:5.1f} MiB"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bills", type=int, default=5000)
    parser.add_argument("--single-window", type=float, default=75.0)
    parser.add_argument("--timeout", type=float, default=SinkOptions().delivery_timeout)
    args = parser.parse_args()
    print(
        f"Xero: {args.bills}-bill backlog, one organisation, 60 calls/min (as "
        f"{WINDOW:.0f} per {WINDOW:.0f} s), 5 concurrent, {LATENCY}s per call, "
        f"call timeout {args.timeout:g}s"
    )
    batched = await run(50, args.bills, window=600.0, timeout=args.timeout)
    print(
        "  (batched: the whole backlog; single: the same backlog for a fixed window)",
        file=sys.stderr,
    )
    single = await run(1, args.bills, window=args.single_window, timeout=args.timeout)
    report("batched", batched)
    report("single", single)
    ratio = (batched["invoices"] / batched["seconds"]) / max(
        1e-9, single["invoices"] / single["seconds"]
    )
    print(f"  batched / single invoices per second: {ratio:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
