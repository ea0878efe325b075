"""`make bench-monitor`: the monitor on a backlog of results, against a baseline measured in
the same run: a plain aiokafka consumer that parses the same records and commits per batch
(the monitor also writes the states a batch changed and acknowledges them first).

A backlog of BENCH_RESULTS results (default 20,000) over 50 configurations, 6 partitions:
per bill a STARTED run (changes nothing), then a COMPLETE run (resets: one changelog write)
or, one bill in ten, an error event (counts: one changelog write). Prints results/s for
both, their ratio, and the monitor's peak memory."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer

from benchmarks.common import MemorySampler, bench_settings, spawn, wait_committed
from shared.contracts import (
    Destination,
    EventType,
    IntegrationEvent,
    IntegrationRun,
    ResultRecordAdapter,
    RunStatus,
)
from shared.kafka.client_options import kafka_options
from shared.kafka.producer import make_producer
from shared.kafka.topics import delete_topics_with_prefix, ensure_topics
from shared.settings import Settings

CONFIGS = 50


def _results(n: int) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC)
    out: list[tuple[bytes, bytes]] = []
    bill = 0
    while len(out) < n:
        cfg = f"cfg-{bill % CONFIGS:02d}"
        run = IntegrationRun(
            id=f"run-{bill}",
            entity_id=f"bill-{bill}",
            integration_config_id=cfg,
            destination=Destination.STRIPE_TEST,
            status=RunStatus.STARTED,
            dt_started=now,
        )
        out.append((cfg.encode(), run.to_bytes()))
        if bill % 10 == 9:
            final: IntegrationEvent | IntegrationRun = IntegrationEvent(
                id=f"evt-{bill}",
                event_type=EventType.PERFORM_ERROR,
                message="No such customer",
                integration_config_id=cfg,
                integration_run_id=run.id,
                entity_id=run.entity_id,
                dt_created=now,
            )
        else:
            final = run.model_copy(update={"status": RunStatus.COMPLETE})
        out.append((cfg.encode(), final.to_bytes()))
        bill += 1
    return out[:n]


async def _publish(settings: Settings, items: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(settings.kafka_bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        topic = settings.topics.name("integration_results")
        for key, value in items:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def _baseline(settings: Settings, total: int) -> float:
    """Seconds for a plain consumer to parse and commit the backlog."""
    consumer = AIOKafkaConsumer(
        settings.topics.name("integration_results"),
        **kafka_options(settings.kafka_bootstrap_servers),
        group_id=f"{settings.consumer_group_prefix}-baseline",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    started, done = time.monotonic(), 0
    try:
        while done < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                for record in records:
                    ResultRecordAdapter.validate_json(record.value or b"")
                done += len(records)
            if batches:
                await consumer.commit()
        return time.monotonic() - started
    finally:
        await consumer.stop()


async def main() -> None:
    total = int(os.environ.get("BENCH_RESULTS", "20000"))
    settings = bench_settings("monitor")
    await ensure_topics(settings)
    try:
        await _publish(settings, _results(total))
        base = await _baseline(settings, total)
        proc = spawn(
            "services.monitor",
            settings,
            BILLSYNC_MONITOR_ERROR_THRESHOLD="1000000",
            BILLSYNC_MONITOR_CONTROL_URL="http://127.0.0.1:9",
        )
        sampler = MemorySampler(proc.pid)
        try:
            results = {settings.topics.name("integration_results")}
            # Includes the monitor's start (topics, state load, group join).
            took = await wait_committed(
                settings.kafka_bootstrap_servers,
                f"{settings.consumer_group_prefix}-monitor",
                results,
                total,
                "monitor",
            )
        finally:
            proc.terminate()
            proc.wait(30)
            peak = sampler.stop()
        print(f"results: {total:,} over {CONFIGS} configurations, 6 partitions")
        print(f"baseline (parse + commit per batch): {total / base:,.0f} results/s")
        print(f"monitor (start included): {total / took:,.0f} results/s ({took:.1f} s)")
        print(f"ratio monitor / baseline: {base / took:.0%}")
        print(f"monitor peak RSS: {peak / 2**20:.0f} MiB")
    finally:
        await delete_topics_with_prefix(settings.kafka_bootstrap_servers, settings.topics.prefix)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
