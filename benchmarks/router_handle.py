"""`python -m benchmarks.router_handle`: the router's own work per bill, without a broker.

Runs `RouterService.handle` (decode, route, prepare, build envelopes, append them to
record batches) over the router benchmark's bills, configurations and accounts, and
prints the process CPU per bill: the steady figure to profile a change against, where a
drain through the broker swings with the machine's load. Env: PROFILE=1 adds a cProfile
of one pass."""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import random
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer, ConsumerRecord

from benchmarks.router import ACCOUNTS, make_configs
from services.router.service import RouterService, _decode_config
from shared.logging import configure_logging
from shared.sampledata import make_accounts, make_bills
from shared.settings import Settings, TopicNames

PASSES = 7


class BatchesOnly:
    """Stands in for the router's BatchSender: the same record batches, never sent."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._batch = producer.create_batch()
        self.records = 0

    def add(self, topic: str, key: bytes, value: bytes) -> None:
        if self._batch.append(key=key, value=value, timestamp=None) is None:
            self._batch._build()  # the checksum and framing a real send pays
            self._batch = self._producer.create_batch()
            self._batch.append(key=key, value=value, timestamp=None)
        self.records += 1


async def main() -> None:
    configure_logging("WARNING")
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", topics=TopicNames(prefix="h-"))
    router = RouterService(settings)  # never started: no connection is made (clients
    # need a running loop to be created, hence async)
    accounts = make_accounts(ACCOUNTS)
    for cfg in make_configs([a.id for a in accounts], random.Random(5)):
        router._config_changed(cfg.id, _decode_config(cfg.to_bytes()))
    router.accounts.data.update({a.id: a for a in accounts})
    bills = [b.to_bytes() for b in make_bills(accounts, ACCOUNTS, 20, embed_account=False)]
    topic = router.topic_generated
    records = [
        ConsumerRecord(topic, i % 6, i, 0, 0, None, raw, None, len(raw), -1, [])
        for i, raw in enumerate(bills)
    ]
    sender = BatchesOnly(router.producer)
    router._sender = sender  # type: ignore[assignment]

    def one_pass() -> float:
        router._routed_at = datetime.now(UTC).isoformat()
        started = time.process_time()
        for record in records:
            router.handle(record)
        return time.process_time() - started

    one_pass()  # routing decisions and account views cached, as in a long drain
    best = min(one_pass() for _ in range(PASSES))
    print(
        f"router handle(): {best / len(records) * 1e6:.1f} us of CPU per bill "
        f"(best of {PASSES} passes over {len(records):,} bills), "
        f"{sender.records / ((PASSES + 1) * len(records)):.2f} envelopes per bill"
    )
    if os.environ.get("PROFILE"):
        profile = cProfile.Profile()
        profile.runcall(one_pass)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    await router.consumer.stop()
    await router.producer.stop()


if __name__ == "__main__":
    asyncio.run(main())
