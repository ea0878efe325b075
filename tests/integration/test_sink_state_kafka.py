"""The framework's Kafka-backed state on the real broker: the one compacted-table class
(a writer's own records are not put back by its follower), the schedule that survives a
restart with the latest version of each bill, and the status follower that brings
webhook statuses to the sink (the invoice map's only writer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from shared.contracts import (
    Destination,
    DispatchEnvelope,
    ExternalInvoiceStatus,
    ExternalStatusUpdate,
)
from shared.kafka.producer import make_producer
from shared.kafka.table import CompactedTable
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from shared.sinks.invoice_status import StatusFollower
from shared.sinks.schedule import ScheduleStore
from shared.sinks.standard_tests import generated_envelope
from tests.support.builders import account, bill, config
from tests.support.kafka import publish

pytestmark = pytest.mark.kafka
T0 = datetime(2026, 11, 29, 12, 10, tzinfo=UTC)


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


def envelope(bill_id: str, version: int) -> DispatchEnvelope:
    cfg = config("cfg-s", destination="XERO")
    return generated_envelope(cfg, bill(bill_id, version=version), account(), T0)


async def test_the_follower_never_puts_back_what_the_writer_replaced(settings: Settings) -> None:
    await ensure_topics(settings)
    topic = settings.topics.name("sink_schedule")
    seen: list[tuple[str, bytes | None]] = []
    table = CompactedTable[bytes](
        topic, settings.kafka_bootstrap_servers, bytes, lambda k, v: seen.append((k, v))
    )
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    await table.start()
    try:
        await table.write(producer, "k", b"v1", b"v1")
        await table.write(producer, "k", b"v2", b"v2")
        await table.write(producer, "gone", b"x", b"x")
        await table.write(producer, "gone", None, None)
        await publish(settings.kafka_bootstrap_servers, topic, [(b"marker", b"m")])
        await until(lambda: "marker" in table.data)  # the follower has read past them all
        assert table.data == {"k": b"v2", "marker": b"m"}
        assert seen == [
            ("k", b"v1"),
            ("k", b"v2"),
            ("gone", b"x"),
            ("gone", None),
            ("marker", b"m"),
        ]
    finally:
        await table.stop()
        await producer.stop()


async def test_the_schedule_survives_a_restart_and_goes_out_once(settings: Settings) -> None:
    await ensure_topics(settings)
    topic, bs = settings.topics.name("sink_schedule"), settings.kafka_bootstrap_servers
    producer = make_producer(bs)
    await producer.start()
    try:
        first = ScheduleStore("xero", topic, bs)
        await first.start()
        await first.collect(producer, envelope("b-1", 1), T0)
        await first.collect(producer, envelope("b-2", 1), T0)
        await first.collect(producer, envelope("b-1", 2), T0)  # replaces version 1
        await first.stop()

        again = ScheduleStore("xero", topic, bs)  # a restarted sink
        await again.start()
        due = again.pending.due(datetime(2026, 11, 29, 13, tzinfo=UTC), lambda _: 3600.0)
        assert [(r.bill_id, r.bill_version) for r in due] == [("b-1", 2), ("b-2", 1)]
        await again.done(producer, due)
        assert len(again.pending) == 0
        await again.stop()

        last = ScheduleStore("xero", topic, bs)
        await last.start()
        assert len(last.pending) == 0  # delivered records are gone for good
        await last.stop()
    finally:
        await producer.stop()


async def test_status_updates_for_the_sinks_destinations_reach_it(settings: Settings) -> None:
    await ensure_topics(settings)
    topic = settings.topics.name("integration_results")
    applied: list[ExternalStatusUpdate] = []

    async def apply(update: ExternalStatusUpdate) -> None:
        applied.append(update)

    def update(event_id: str, destination: Destination) -> bytes:
        return ExternalStatusUpdate(
            id=event_id,
            destination=destination,
            external_id="in_1",
            external_status=ExternalInvoiceStatus.PAID,
            provider_event_type="invoice.paid",
            entity_id="bill-1",
            integration_config_id="cfg-1",
            dt_received=T0,
        ).to_bytes()

    follower = StatusFollower(
        topic,
        settings.kafka_bootstrap_servers,
        f"{settings.consumer_group_prefix}-status-test",
        frozenset({Destination.STRIPE_TEST}),
        apply,
    )
    await follower.start()
    try:
        await publish(
            settings.kafka_bootstrap_servers,
            topic,
            [
                (b"cfg-1", b'{"recordType": "run"}'),
                (b"cfg-1", update("evt-other", Destination.XERO)),
                (b"cfg-1", update("evt-ours", Destination.STRIPE_TEST)),
            ],
        )
        await until(lambda: len(applied) == 1)
        assert applied[0].id == "evt-ours"
    finally:
        await follower.stop()
