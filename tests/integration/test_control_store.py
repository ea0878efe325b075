"""The store on both backends: upsert ordering, keyset pages with ties, time zones, and an
ingester that resumes after a restart without losing or doubling anything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from shared.contracts import ExternalStatusUpdate, IntegrationEvent, IntegrationRun
from shared.settings import Settings
from shared.store import EventQuery, RunQuery, Store
from tests.support.control import database_backends, fresh_database, running_control_plane
from tests.support.kafka import publish

T0 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(params=database_backends())
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database(request.param) as url:
        yield url or f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    store = Store(database)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def run(run_id: str, status: str, at: datetime, attempt: int = 1, **f: object) -> IntegrationRun:
    return IntegrationRun.model_validate(
        {
            "id": run_id,
            "entityId": f.pop("bill", "bill-1"),
            "integrationConfigId": "cfg-1",
            "destination": "XERO",
            "status": status,
            "dtStarted": at,
            "attempt": attempt,
            **f,
        }
    )


async def test_latest_state_wins_whatever_the_delivery_order(store: Store) -> None:
    await store.ingest([run("r", "STARTED", T0), run("r", "AWAITING_RETRY", T0)])
    await store.ingest([run("r", "COMPLETE", T0, attempt=2, external_id="INV-1")])
    # Redelivered older records of the same run change nothing.
    await store.ingest([run("r", "STARTED", T0, attempt=2), run("r", "ERROR", T0, attempt=1)])
    stored = await store.get_run("r")
    assert stored is not None
    assert (stored.run.status, stored.run.attempt, stored.run.external_id) == (
        "COMPLETE",
        2,
        "INV-1",
    )
    # Within one batch, the final status of the latest attempt is kept.
    await store.ingest([run("q", "COMPLETE", T0), run("q", "STARTED", T0)])
    assert (await store.get_run("q")).run.status == "COMPLETE"  # type: ignore[union-attr]


async def test_a_final_record_wins_over_retries_of_any_attempt(store: Store) -> None:
    """Issue 7 item 4: retry records of attempt 3, then the final record; and a redelivery
    after a crash (attempts counted from 1 again) that ends later replaces an earlier
    final record."""
    later = T0 + timedelta(minutes=1)
    await store.ingest([run("r", "AWAITING_RETRY", T0, attempt=2)])
    await store.ingest([run("r", "RATE_LIMIT_RETRY", T0, attempt=3)])
    await store.ingest([run("r", "ERROR", T0, attempt=1, dtCompleted=T0)])
    assert (await store.get_run("r")).run.status == "ERROR"  # type: ignore[union-attr]
    await store.ingest([run("r", "STARTED", T0, attempt=1)])  # the redelivery starts
    assert (await store.get_run("r")).run.status == "ERROR"  # type: ignore[union-attr]
    await store.ingest([run("r", "COMPLETE", T0, attempt=1, dtCompleted=later)])
    await store.ingest([run("r", "ERROR", T0, attempt=8, dtCompleted=T0)])  # redelivered
    assert (await store.get_run("r")).run.status == "COMPLETE"  # type: ignore[union-attr]


async def test_pages_with_equal_start_times_and_time_zones(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    same = T0.astimezone(plus_two)  # the same instant written with another offset
    await store.ingest([run(f"r{i}", "COMPLETE", same if i % 2 else T0) for i in range(7)])
    await store.ingest([run("later", "ERROR", T0 + timedelta(seconds=1))])
    seen: list[str] = []
    after = None
    while True:
        page = await store.list_runs(RunQuery(limit=3, after=after))
        seen += [r.run.id for r in page.items]
        assert all(r.run.dt_started.tzinfo is not None for r in page.items)
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == ["later", "r6", "r5", "r4", "r3", "r2", "r1", "r0"]
    window = await store.list_runs(RunQuery(dt_from=same, dt_to=T0 + timedelta(seconds=1)))
    assert len(window.items) == 7
    assert await store.failed_runs_since("cfg-1", T0.astimezone(plus_two)) == [
        (await store.get_run("later")).run  # type: ignore[union-attr]
    ]


async def test_events_and_external_statuses(store: Store) -> None:
    event = IntegrationEvent(
        id="e1",
        event_type="integration.perform.error",
        message="m",
        integration_config_id="cfg-1",
        dt_created=T0,
    )
    await store.ingest([event, run("r1", "COMPLETE", T0, external_id="in_1")])
    marked = await store.mark_event_actioned("e1")
    assert marked is not None and marked.event.actioned and marked.dt_actioned is not None
    await store.ingest([event])  # redelivered: still actioned
    page = await store.list_events(EventQuery(actioned=True))
    assert [e.event.id for e in page.items] == ["e1"]
    assert await store.mark_event_actioned("nope") is None

    def status(event_id: str, kind: str, minutes: int) -> ExternalStatusUpdate:
        return ExternalStatusUpdate(
            id=event_id,
            external_id="in_1",
            external_status=kind,
            provider_event_type="x",
            dt_received=T0 + timedelta(minutes=minutes),
        )

    await store.ingest([status("s2", "PAID", 2), status("s1", "FINALIZED", 1)])
    await store.ingest([status("s0", "VOID", 0)])  # older: ignored
    stored = await store.get_run("r1")
    assert stored is not None and stored.external_status is not None
    assert (stored.external_status.status, stored.external_status.entity_id) == ("PAID", "bill-1")


@pytest.mark.kafka
async def test_ingestion_resumes_after_restart(settings: Settings, database: str) -> None:
    topic = settings.topics.name("integration_results")

    async def batch(start: int, count: int) -> None:
        records = [
            run(f"r{i}", "COMPLETE", T0 + timedelta(seconds=i), bill=f"b{i}")
            for i in range(start, start + count)
        ]
        await publish(
            settings.kafka_bootstrap_servers,
            topic,
            [(r.id.encode(), r.to_bytes()) for r in records],
        )

    async def count_runs(store: Store, expected: int) -> None:
        for _ in range(150):
            if len((await store.list_runs(RunQuery(limit=200))).items) == expected:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"expected {expected} runs")

    async with running_control_plane(settings, database) as cp:
        assert cp.plane is not None
        await batch(0, 20)
        await count_runs(cp.plane.ctx.store, 20)
    await batch(20, 10)  # published while the control plane is down
    async with running_control_plane(settings, database) as cp:
        assert cp.plane is not None
        await count_runs(cp.plane.ctx.store, 30)
        await asyncio.sleep(0.5)  # nothing more arrives: no duplicate rows, no re-reads lost
        assert len((await cp.plane.ctx.store.list_runs(RunQuery(limit=200))).items) == 30
