"""The monitor after a kill -9 mid-stream: the count survives and nothing is counted twice
(what came after the last commit is redelivered). The monitor runs as a real process
(`python -m services.monitor`) with the smallest window of remembered ids, so only the
applied offsets can recognise a redelivered batch."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from shared.contracts import Destination, EventType, IntegrationEvent
from shared.kafka.groups import committed_offsets
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from tests.support.kafka import publish

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "cfg-kill"
TOTAL = 2000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **settings.to_env(),
        "BILLSYNC_LOG_LEVEL": "WARNING",
        "BILLSYNC_HTTP_PORT": str(port),
        "BILLSYNC_MONITOR_ERROR_THRESHOLD": str(TOTAL * 10),  # counting only
        # The smallest id window: only the offsets can recognise a large redelivery.
        "BILLSYNC_MONITOR_REMEMBERED_IDS": "10",
        "BILLSYNC_MONITOR_CONTROL_URL": "http://127.0.0.1:9",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.monitor"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


async def _count(http: aiohttp.ClientSession, port: int) -> int | None:
    """The gauge on /metrics, or None while the monitor is not serving."""
    try:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    except aiohttp.ClientError:
        return None
    found = re.search(
        rf'billsync_monitor_successive_errors\{{integration_config_id="{CONFIG}"\}} (\S+)', text
    )
    return int(float(found.group(1))) if found else 0


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def _until(
    check: Callable[[], Awaitable[bool]], what: str, proc: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 90
    while not await check():
        if proc.poll() is not None:
            raise AssertionError(f"the monitor exited: {_tail(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {_tail(log)}")
        await asyncio.sleep(0.05)


async def _committed(settings: Settings) -> int:
    offsets = await committed_offsets(
        settings.kafka_bootstrap_servers, f"{settings.consumer_group_prefix}-monitor"
    )
    results = settings.topics.name("integration_results")
    return sum(offset for tp, offset in offsets.items() if tp.topic == results)


def _errors(start: int, n: int) -> list[tuple[bytes | None, bytes | None]]:
    return [
        (
            CONFIG.encode(),
            IntegrationEvent(
                id=f"evt-kill-{i}",
                event_type=EventType.PERFORM_ERROR,
                message=f"error {i}",
                integration_config_id=CONFIG,
                integration_run_id=f"run-{i}",
                entity_id=f"bill-{i}",
                destination=Destination.STRIPE_TEST,
                dt_created=datetime.now(UTC),
            ).to_bytes(),
        )
        for i in range(start, start + n)
    ]


async def test_kill_9_loses_no_count_and_counts_nothing_twice(
    settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    port, log = _free_port(), tmp_path / "monitor.log"
    results = settings.topics.name("integration_results")
    proc = _start(settings, port, log)
    try:
        async with aiohttp.ClientSession() as http:

            async def serving() -> bool:
                return await _count(http, port) is not None

            await _until(serving, "the monitor to serve /metrics", proc, log)
            await publish(settings.kafka_bootstrap_servers, results, _errors(0, TOTAL))

            async def midway() -> bool:
                return ((await _count(http, port)) or 0) >= TOTAL // 4

            await _until(midway, "a quarter of the errors counted", proc, log)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

            proc = _start(settings, port, log)

            async def all_committed() -> bool:
                return await _committed(settings) == TOTAL

            # The count is written before the input offsets are committed.
            await _until(all_committed, "every input offset committed", proc, log)
            assert await _count(http, port) == TOTAL  # none lost, nothing counted twice
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
