"""Shared benchmark plumbing: an isolated namespace, backlog production, process sampling."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from shared.kafka.groups import committed_offsets
from shared.settings import Settings, TopicNames

ROOT = Path(__file__).resolve().parent.parent


def bench_settings(name: str) -> Settings:
    prefix = f"bench-{name}-{uuid.uuid4().hex[:6]}-"
    return Settings(
        kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        topics=TopicNames(prefix=prefix),
        topic_partitions=6,
        consumer_group_prefix=prefix + "g",
    )


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, **settings.to_env(), "BILLSYNC_LOG_LEVEL": "WARNING", **extra}


@dataclass
class MemorySampler:
    """Samples a process's resident set size every 50 ms in a thread."""

    pid: int
    peak_rss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            proc = psutil.Process(self.pid)
            while not self._stop.is_set():
                self.peak_rss = max(self.peak_rss, proc.memory_info().rss)
                time.sleep(0.05)
        except psutil.NoSuchProcess:
            return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(1)
        return self.peak_rss

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far."""
        try:
            times = psutil.Process(self.pid).cpu_times()
        except psutil.NoSuchProcess:
            return float("nan")
        return float(times.user + times.system)


def spawn(module: str, settings: Settings, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *extra.pop("ARGS", "").split()],
        cwd=ROOT,
        env=env_for(settings, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


async def committed_total(bootstrap: str, group: str, topics: set[str]) -> int:
    offsets = await committed_offsets(bootstrap, group)
    return sum(offset for tp, offset in offsets.items() if tp.topic in topics and offset > 0)


async def wait_committed(
    bootstrap: str, group: str, topics: set[str], total: int, label: str, timeout: float = 900
) -> float:
    """Seconds until the group has committed `total` records; prints progress."""
    return (await drain_rate(bootstrap, group, topics, total, label, timeout))[0]


async def drain_rate(
    bootstrap: str, group: str, topics: set[str], total: int, label: str, timeout: float = 900
) -> tuple[float, float]:
    """(seconds until the group has committed `total` records, records/s from its first
    commit to its last): the rate leaves out the group join (several seconds for a new
    group), which would otherwise dominate a small backlog. Prints progress."""
    started = time.monotonic()
    last_print = 0.0
    first: tuple[float, int] | None = None
    while True:
        done = await committed_total(bootstrap, group, topics)
        now = time.monotonic()
        if first is None and done > 0:
            first = (now, done)
        if done >= total:
            assert first is not None
            rate = (done - first[1]) / (now - first[0]) if now > first[0] else float("nan")
            return now - started, rate
        if now - last_print > 5:
            print(f"  {label}: {done:,}/{total:,} committed", file=sys.stderr)
            last_print = now
        if now - started > timeout:
            raise TimeoutError(f"{label}: only {done} of {total} after {timeout}s")
        await asyncio.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
