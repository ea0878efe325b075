"""The sink runner's delivery guarantees on a real broker (issue 7): a graceful stop and a
rebalance commit only finished work; nothing lost, nothing doubled, no crash."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest

from services.stripe_sink.client import StripeApi
from services.stripe_sink.destination import StripeDestination
from shared.contracts import EventType, RunStatus
from shared.settings import Settings
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls
from shared.sinks.metrics import INTERNAL_ERRORS
from shared.sinks.runner import SinkRunner, running_sink
from tests.integration.test_stripe_sink_e2e import (
    KEY,
    assert_one_invoice_per_bill,
    bills,
    publish_envelopes,
)
from tests.support.builders import config
from tests.support.kafka import group_offsets, read_topic
from tests.support.services import start_service
from tests.support.stripe_stack import StripeStack, stripe_stack

pytestmark = pytest.mark.kafka


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok = check()
        if ok if isinstance(ok, bool) else await ok:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def committed_and_end(
    stack: StripeStack, group: str
) -> tuple[dict[int, int], dict[int, int]]:
    topic = stack.settings.topics.dispatch("stripe")
    return await group_offsets(stack.settings.kafka_bootstrap_servers, group, topic)


def group_of(runner: SinkRunner) -> str:
    return f"{runner.settings.consumer_group_prefix}-stripe-sink"


async def test_graceful_stop_leaves_waiting_bills_uncommitted(settings: Settings) -> None:
    """30 bills wait in retry on a failing provider; a stop must not commit past them, so
    the next sink (provider healthy again) delivers all 30."""
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        cfg = config("cfg-s", "STRIPE_TEST", integrationCredentialsId="cred-1")
        await stack.configs(cfg)
        stack.fake.configure(faults={"error_rate": 1.0, "errors_replayed": False})
        items = bills(30)
        async with stack.sink(max_attempts=50, retry_base_delay=5.0, retry_max_delay=5.0):
            await publish_envelopes(stack, cfg, items)

            async def all_waiting() -> bool:
                runs, _ = await stack.results()
                waiting = [r for r in runs.values() if r.status is RunStatus.AWAITING_RETRY]
                return len(waiting) == 30

            await wait_until(all_waiting, "30 runs awaiting retry")
        stack.fake.configure(faults={"error_rate": 0.0})
        async with stack.sink():
            runs = await stack.wait_final_runs(30, timeout=60)
        assert {r.status for r in runs.values()} == {RunStatus.COMPLETE}
        assert_one_invoice_per_bill(stack, {b.id for b in items})


async def test_stop_waits_for_calls_in_flight_and_commits_them(settings: Settings) -> None:
    """Deliveries already calling the provider finish within the grace period: their runs
    are final and their offsets committed, so the next sink has nothing left to do."""
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        cfg = config("cfg-s", "STRIPE_TEST", integrationCredentialsId="cred-1")
        await stack.configs(cfg)
        stack.fake.configure(faults={"latency_ms": 300})
        items = bills(6)
        async with stack.sink(per_config_concurrency=6) as runner:
            await publish_envelopes(stack, cfg, items)
            await wait_until(lambda: len(runner.consumer._busy) == 6, "six deliveries calling")
        runs, _ = await stack.results()
        assert {r.status for r in runs.values()} == {RunStatus.COMPLETE}
        assert len(runs) == 6
        committed, end = await committed_and_end(stack, group_of(runner))
        assert committed == end


async def test_rebalance_join_and_kill_nothing_lost_or_doubled(settings: Settings) -> None:
    """Sink A runs; sink B (a process) joins mid-stream, then is killed -9. A survives both
    rebalances; every bill has exactly one invoice and the group's committed offsets
    reach the end of every partition."""
    async with stripe_stack(settings, customers=10) as stack:
        await stack.credential("cred-1", KEY)
        cfg = config("cfg-s", "STRIPE_TEST", integrationCredentialsId="cred-1")
        await stack.configs(cfg)
        stack.fake.configure(faults={"latency_ms": 20})
        items = bills(240)
        env = {
            "BILLSYNC_STRIPE_API_BASE": stack.url,
            "BILLSYNC_CREDENTIALS_KEY": stack.key,
            "BILLSYNC_SINK_RETRY_BASE_DELAY": "0.05",
            "BILLSYNC_SINK_COMMIT_INTERVAL": "0.2",
        }
        proc = None
        # A crash of A's loop would re-raise when the context stops it.
        async with stack.sink() as runner:
            try:
                await publish_envelopes(stack, cfg, items)
                await wait_until(lambda: len(stack.fake.invoices()) >= 30, "A's progress")
                proc = start_service("services.stripe_sink", stack.settings, **env)
                # B joined: A gives partitions away (and keeps running).
                await wait_until(lambda: len(runner.consumer._trackers) < 3, "a rebalance", 60)
                await wait_until(lambda: len(stack.fake.invoices()) >= 120, "B's progress")
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                runs = await stack.wait_final_runs(240, timeout=120)
                group = group_of(runner)

                async def fully_committed() -> bool:
                    committed, end = await committed_and_end(stack, group)
                    return committed == end

                await wait_until(fully_committed, "committed offsets at the partition ends")
            finally:
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        assert {r.status for r in runs.values()} == {RunStatus.COMPLETE}
        assert_one_invoice_per_bill(stack, {b.id for b in items})
        for inv in stack.fake.invoices():
            assert inv["status"] == "open" and len(inv["lines"]["data"]) == 2


async def test_runs_marked_started_only_when_delivery_begins(settings: Settings) -> None:
    """Queued envelopes are neither STARTED in the run history nor PENDING in the invoice
    map: with one delivery slot, at most the one being delivered is."""
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        cfg = config("cfg-s", "STRIPE_TEST", integrationCredentialsId="cred-1")
        await stack.configs(cfg)
        stack.fake.configure(faults={"latency_ms": 100})
        items = bills(20)
        async with stack.sink(per_config_concurrency=1):
            await publish_envelopes(stack, cfg, items)
            await wait_until(lambda: len(stack.fake.invoices()) >= 3, "three invoices")
            runs, _ = await stack.results()
            pending = [
                r
                for r in await read_topic(
                    stack.settings.kafka_bootstrap_servers,
                    stack.settings.topics.name("invoice_map"),
                )
                if b'"PENDING"' in (r.value or b"")
            ]
            delivered = len(stack.fake.invoices())
            assert len(runs) <= delivered + 2, [r.status.value for r in runs.values()]
            assert len(pending) <= delivered + 2
            await stack.wait_final_runs(20)
        assert_one_invoice_per_bill(stack, {b.id for b in items})


class BuggyDestination(StripeDestination):
    """A bug on the delivery path: an exception nothing classifies."""

    async def deliver(
        self, request: DeliveryRequest, client: StripeApi, calls: ProviderCalls
    ) -> DeliveryResult:
        Decimal("1e400").quantize(Decimal("0.01"))  # InvalidOperation, as in issue 7
        raise AssertionError("unreachable")


async def test_our_own_bug_is_an_internal_error_not_a_provider_error(settings: Settings) -> None:
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        cfg = config("cfg-s", "STRIPE_TEST", integrationCredentialsId="cred-1")
        await stack.configs(cfg)
        before = INTERNAL_ERRORS.labels("stripe", "InvalidOperation")._value.get()
        runner = SinkRunner(
            stack.settings, BuggyDestination(api_base=stack.url), stack.options, stack.cipher
        )
        async with running_sink(runner):
            await publish_envelopes(stack, cfg, bills(2))
            runs = await stack.wait_final_runs(2)
        _, events = await stack.results()
        assert {r.status for r in runs.values()} == {RunStatus.ERROR}
        assert [e.event_type for e in events] == [EventType.INTERNAL_ERROR] * 2
        for text in [*(r.error or "" for r in runs.values()), *(e.message for e in events)]:
            assert text.startswith("internal error in billsync (reference ie_")
            assert "InvalidOperation" not in text and "(" not in text.split(")", 1)[1]
        assert INTERNAL_ERRORS.labels("stripe", "InvalidOperation")._value.get() == before + 2


async def test_only_the_newest_waiting_version_is_sent(settings: Settings) -> None:
    """Version 1 waits in retry while versions 2 and 3 arrive: a finalizing configuration
    must end with version 3 on the invoice, not version 1 finalized and the others locked
    out."""
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        cfg = config("cfg-s", "STRIPE_TEST", integrationCredentialsId="cred-1")
        await stack.configs(cfg)
        stack.fake.configure(faults={"error_rate": 1.0, "errors_replayed": False})
        async with stack.sink(retry_base_delay=0.5, retry_max_delay=0.5) as runner:
            await publish_envelopes(stack, cfg, bills(1, version=1))

            async def waiting() -> bool:
                runs, _ = await stack.results()
                return any(r.status is RunStatus.AWAITING_RETRY for r in runs.values())

            await wait_until(waiting, "version 1 awaiting retry")
            await publish_envelopes(stack, cfg, bills(1, version=2) + bills(1, version=3))
            await wait_until(
                lambda: any(3 in v for v in runner.policy._waiting.values()), "version 3 fetched"
            )
            stack.fake.configure(faults={"error_rate": 0.0})
            runs = await stack.wait_final_runs(3)
        by_version = {r.entity_version: r.status for r in runs.values()}
        assert by_version == {1: RunStatus.SKIPPED, 2: RunStatus.SKIPPED, 3: RunStatus.COMPLETE}
        [invoice] = stack.fake.invoices()
        assert invoice["status"] == "open"
        assert invoice["metadata"]["billsync_bill_version"] == "3"


async def test_fault_mix_every_run_complete_and_no_orphan(settings: Settings) -> None:
    """Issue 7 item 3: 20% 5xx that Stripe saves under their keys, 5% answers dropped after
    the write committed. Every run ends COMPLETE; one finalized, complete invoice per bill,
    no draft or empty invoice left behind."""
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        cfg = config("cfg-s", "STRIPE_TEST", integrationCredentialsId="cred-1")
        await stack.configs(cfg)
        stack.fake.configure(
            faults={
                "seed": 11,
                "error_rate": 0.2,
                "errors_replayed": True,
                "drop_after_commit_rate": 0.05,
            }
        )
        items = bills(60)
        async with stack.sink(max_attempts=12):
            await publish_envelopes(stack, cfg, items)
            runs = await stack.wait_final_runs(60, timeout=120)
        stats = stack.fake.stats
        assert stats["injected_errors"] > 0 and stats["dropped_after_commit"] > 0
        assert {r.status for r in runs.values()} == {RunStatus.COMPLETE}
        assert_one_invoice_per_bill(stack, {b.id for b in items})
        for inv in stack.fake.invoices():
            assert inv["status"] == "open" and len(inv["lines"]["data"]) == 2


async def test_a_run_that_gives_up_leaves_no_half_written_invoice(settings: Settings) -> None:
    """The draft is created, adding its lines keeps failing until the run gives up: the
    draft is removed (and the run says so), nothing half-written stays at Stripe."""
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        cfg = config("cfg-s", "STRIPE_TEST", integrationCredentialsId="cred-1")
        await stack.configs(cfg)
        stack.fake.configure(
            faults={"rules": [{"path_prefix": "/v1/invoices/", "method": "POST", "count": 100}]}
        )
        async with stack.sink(max_attempts=3):
            await publish_envelopes(stack, cfg, bills(1))
            [run] = (await stack.wait_final_runs(1)).values()
        assert run.status is RunStatus.ERROR
        assert run.error and "removed the incomplete Stripe draft in_" in run.error
        assert stack.fake.invoices() == []
