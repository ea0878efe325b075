"""Framework v2 through the whole runner on the real broker, against the batching fake:
scheduled delivery that survives a restart and sends the latest version once, a spent
daily quota that parks one tenant's work while another tenant's flows and the offsets
move on, and webhook statuses reaching the invoice map through the sink."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from fakes.batching import FakeBatching
from shared.contracts import ExternalInvoiceStatus, ExternalStatusUpdate, RunStatus
from shared.kafka.groups import committed_offsets
from shared.settings import Settings
from shared.sinks.batching import BatchPolicy
from shared.sinks.invoice_map import InvoiceState, map_key
from shared.sinks.limits import ProviderLimits, Scope, Window
from shared.sinks.standard_batch_tests import BatchStack, batch_stack, envelope
from shared.sinks.standard_tests import standard_bill
from tests.support.batching import FakeBatchingHarness
from tests.support.kafka import publish, read_topic

pytestmark = pytest.mark.kafka


@pytest.fixture
async def fake() -> AsyncIterator[FakeBatching]:
    fake = FakeBatching(window_calls=1000, window_seconds=60, concurrent=5, daily=100000)
    await fake.start()
    yield fake
    await fake.stop()


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def statuses(stack: BatchStack, bill_id: str) -> list[RunStatus]:
    return [r.status for r in stack.runs.values() if r.entity_id == bill_id]


async def test_scheduled_delivery_survives_a_restart_and_sends_the_latest_version_once(
    settings: Settings, fake: FakeBatching
) -> None:
    hourly = FakeBatchingHarness(fake, scheduled={"cfg-sched": 3600.0})
    async with batch_stack(settings, hourly) as stack:
        config = hourly.config("cfg-sched", hourly.credential(0).id)
        v1 = envelope(config, standard_bill("sc-1", 1))
        v2 = envelope(config, standard_bill("sc-1", 2, amounts=("200.00",)))
        other = envelope(config, standard_bill("sc-2", 1))
        await stack.send(v1, other, v2)
        async with stack.sink():
            await until(
                lambda: len([r for r in stack.runs.values() if r.status is RunStatus.WAITING]) == 3
            )
        assert fake.stats["requests"] == 0  # collected, not sent

        # Restarted (with a short interval so the boundary comes now): one call, the
        # latest version of sc-1, and sc-2; the older version is not sent.
        stack.harness = FakeBatchingHarness(fake, scheduled={"cfg-sched": 1.0})
        async with stack.sink():
            await until(lambda: len(fake.invoices) == 2)
            await until(
                lambda: (
                    RunStatus.COMPLETE in statuses(stack, "sc-2")
                    and any(
                        r.status is RunStatus.COMPLETE and r.entity_version == 2
                        for r in stack.runs.values()
                    )
                )
            )
        assert [i.total for i in await hourly.invoices_for("sc-1")] == [Decimal("200.00")]
        assert len(hourly.calls()) == 1 and len(hourly.calls()[0].bill_ids) == 2
        schedule = await read_topic(
            settings.kafka_bootstrap_servers, stack.settings.topics.name("sink_schedule")
        )
        live: dict[bytes | None, bytes | None] = {}
        for record in schedule:
            live[record.key] = record.value
        assert all(v is None for v in live.values())  # delivered records deleted

        # Again after another restart: nothing goes out twice.
        async with stack.sink() as runner:
            await until(lambda: runner.schedule.store.table.ready.is_set())
            assert len(runner.schedule.store.pending) == 0
        assert len(fake.invoices) == 2 and fake.stats["items"] == 2


async def committed(settings: Settings, group: str) -> int:
    offsets = await committed_offsets(settings.kafka_bootstrap_servers, group)
    return sum(offset for offset in offsets.values() if offset > 0)


async def test_a_spent_daily_quota_parks_one_tenant_while_others_flow(
    settings: Settings, fake: FakeBatching
) -> None:
    quota = FakeBatchingHarness(
        fake,
        policy=BatchPolicy(1, 0.0),
        limits=ProviderLimits((Window(600, 60.0),), concurrent=5, daily=3, scope=Scope.TENANT),
    )
    async with batch_stack(settings, quota) as stack:
        a = quota.config("cfg-qa", quota.credential(0).id)
        b = quota.config("cfg-qb", quota.credential(1).id)
        bills_a = [envelope(a, standard_bill(f"qa-{i}")) for i in range(5)]
        bills_b = [envelope(b, standard_bill(f"qb-{i}")) for i in range(3)]
        await stack.send(*bills_a, *bills_b)
        async with stack.sink() as runner:
            final = await stack.final_runs([e.bill.id for e in bills_b])
            assert {r.status for r in final.values()} == {RunStatus.COMPLETE}
            await until(
                lambda: (
                    len(
                        [
                            e
                            for e in bills_a
                            if RunStatus.RATE_LIMIT_RETRY in statuses(stack, e.bill.id)
                        ]
                    )
                    == 2
                )
            )
            parked = runner.schedule.store.pending.records.values()
            assert len(parked) == 2
            assert all(r.not_before and r.not_before > datetime.now(UTC) for r in parked)
            group = f"{stack.settings.consumer_group_prefix}-xero-sink"
            # Parked work does not hold the partition: every offset is committed.
            deadline = time.monotonic() + 20
            while await committed(stack.settings, group) < 8:
                assert time.monotonic() < deadline, "offsets not committed past parked work"
                await asyncio.sleep(0.2)
        assert fake.stats["admitted"] == 3 + 3  # no call was made over tenant A's quota
        assert fake.stats["rate_limited"] == 0


async def test_webhook_statuses_reach_the_invoice_map_through_the_sink(
    settings: Settings, fake: FakeBatching
) -> None:
    harness = FakeBatchingHarness(fake)
    async with batch_stack(settings, harness) as stack:
        config = harness.config("cfg-st", harness.credential(0).id)
        await stack.send(envelope(config, standard_bill("st-1")))
        async with stack.sink() as runner:
            run = (await stack.final_runs(["st-1"]))["st-1"]
            assert run.external_id
            update = ExternalStatusUpdate(
                id="evt-1",
                destination=config.destination,
                external_id=run.external_id,
                external_status=ExternalInvoiceStatus.PAID,
                provider_event_type="invoice.paid",
                entity_id="st-1",
                integration_config_id="cfg-st",
                dt_received=datetime.now(UTC),
            )
            await publish(
                settings.kafka_bootstrap_servers,
                stack.settings.topics.name("integration_results"),
                [(b"cfg-st", update.to_bytes())],
            )
            key = map_key("cfg-st", "st-1")
            await until(
                lambda: (
                    (r := runner.state.invoice_record(key)) is not None
                    and r.state is InvoiceState.PAID
                )
            )
