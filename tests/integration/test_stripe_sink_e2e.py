"""The Stripe sink end to end on a real broker against the faithful local Stripe."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from services.router.envelopes import EnvelopeBuilder
from shared.contracts import EventType, RunStatus, Trigger
from shared.settings import Settings
from tests.support.builders import account, bill, config, line
from tests.support.kafka import publish
from tests.support.services import running_router, start_service
from tests.support.stripe_stack import StripeStack, stripe_stack

pytestmark = pytest.mark.kafka

KEY = "sk_test_e2e"


def stripe_config(cid: str = "cfg-s", cred: str = "cred-1", **dest: object) -> object:
    return config(cid, "STRIPE_TEST", integrationCredentialsId=cred, dest=dest or None)


def bills(n: int, version: int = 1, prefix: str = "bill") -> list:
    return [
        bill(
            f"{prefix}-{i}",
            f"acc-{i % 10 + 1}",
            version=version,
            embed=account(f"acc-{i % 10 + 1}"),
            lines=[
                line(f"l{i}-1", "USAGE", "12.34", quantity="3"),
                line(f"l{i}-2", "STANDING_CHARGE", "5", quantity="1"),
            ],
        )
        for i in range(n)
    ]


async def publish_bills(stack: StripeStack, items: list, topic: str = "bill_generated") -> None:
    await publish(
        stack.settings.kafka_bootstrap_servers,
        stack.settings.topics.name(topic),
        [(b.id.encode(), b.to_bytes()) for b in items],
    )


async def publish_envelopes(
    stack: StripeStack, cfg: object, items: list, trigger: Trigger = Trigger.GENERATED
) -> None:
    builder = EnvelopeBuilder()
    records = []
    for b in items:
        [(c, _, body)] = builder.build(b, b.account, [cfg], trigger, "test/0/0")
        records.append((c.id.encode(), body))
    await publish(
        stack.settings.kafka_bootstrap_servers, stack.settings.topics.dispatch("stripe"), records
    )


def assert_one_invoice_per_bill(stack: StripeStack, expected: set[str]) -> None:
    by_bill = stack.invoices_by_bill()
    assert set(by_bill) == expected, f"missing {expected - set(by_bill)}"
    doubled = {b: len(v) for b, v in by_bill.items() if len(v) != 1}
    assert not doubled, f"duplicate invoices: {doubled}"


async def test_bill_generated_to_stripe_invoice_and_run_records(settings: Settings) -> None:
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        await stack.configs(stripe_config(poNumberCustomField="PO Number"))
        items = bills(4)
        items[0] = items[0].model_copy(update={"purchase_order_number": "PO-77"})
        async with running_router(stack.settings), stack.sink():
            await publish_bills(stack, items)
            runs = await stack.wait_final_runs(4)
        assert_one_invoice_per_bill(stack, {b.id for b in items})
        invoice = stack.invoices_by_bill()["bill-0"][0]
        assert invoice["status"] == "open"  # finalized
        assert invoice["total"] == 1734  # 12.34 + 5.00, in cents
        assert {"name": "PO Number", "value": "PO-77"} in invoice["custom_fields"]
        assert invoice["metadata"]["billsync_config_id"] == "cfg-s"
        for run in runs.values():
            assert run.status is RunStatus.COMPLETE
            assert run.external_id and run.external_id.startswith("in_")
            assert run.url
            assert run.integration_config_id == "cfg-s" and run.source
        _, events = await stack.results()
        assert events == []
        # at most create + add_lines + finalize per bill
        endpoints = {k: v["requests"] for k, v in stack.fake.stats["endpoints"].items()}
        assert stack.fake.stats["requests"] <= 3 * len(items), endpoints


async def test_same_envelope_twice_is_one_invoice_and_no_second_write(settings: Settings) -> None:
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        cfg = stripe_config()
        await stack.configs(cfg)
        items = bills(3)
        async with stack.sink():
            await publish_envelopes(stack, cfg, items)
            await stack.wait_final_runs(3)
            writes = stack.fake.stats["requests"]
            await publish_envelopes(stack, cfg, items)
            await asyncio.sleep(2)
            assert stack.fake.stats["requests"] == writes  # recognised by dispatch id
        assert_one_invoice_per_bill(stack, {b.id for b in items})


async def test_regenerated_three_times_updates_the_draft(settings: Settings) -> None:
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        await stack.configs(stripe_config(leaveInvoicesAsDrafts=True))
        async with running_router(stack.settings), stack.sink():
            for version, amount in ((1, "10"), (2, "20"), (3, "30")):
                b = bill(
                    "bill-r",
                    "acc-1",
                    version=version,
                    embed=account("acc-1"),
                    lines=[line("l1", "USAGE", amount)],
                )
                await publish_bills(stack, [b])
                await stack.wait_final_runs(version, timeout=30)
        [invoice] = stack.invoices_by_bill()["bill-r"]
        assert invoice["status"] == "draft"
        assert invoice["total"] == 3000
        assert len(invoice["lines"]["data"]) == 1


async def test_finalized_invoice_is_never_modified(settings: Settings) -> None:
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        await stack.configs(stripe_config())
        async with running_router(stack.settings), stack.sink():
            await publish_bills(stack, bills(1, version=1))
            await stack.wait_final_runs(1)
            await publish_bills(
                stack,
                [
                    bills(1, version=2)[0].model_copy(
                        update={"line_items": [line("x", "USAGE", "99")]}
                    )
                ],
            )
            runs = await stack.wait_final_runs(2)
        statuses = sorted(r.status.value for r in runs.values())
        assert statuses == ["COMPLETE", "INVOICE_ALREADY_PAID"]
        [invoice] = stack.invoices_by_bill()["bill-0"]
        assert invoice["total"] == 1734  # version 1, untouched


async def test_faults_5xx_and_drops_after_commit_still_one_invoice_each(
    settings: Settings,
) -> None:
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        await stack.configs(stripe_config())
        stack.fake.configure(
            faults={
                "seed": 7,
                "error_rate": 0.2,
                "errors_replayed": False,
                "drop_after_commit_rate": 0.1,
            }
        )
        items = bills(25)
        # Every call of every attempt can fail: allow enough attempts that "eventually"
        # happens within the test (the limit itself is a setting, tested elsewhere).
        async with running_router(stack.settings), stack.sink(max_attempts=30):
            await publish_bills(stack, items)
            runs = await stack.wait_final_runs(25, timeout=120)
        stats = stack.fake.stats
        assert stats["injected_errors"] > 0 and stats["dropped_after_commit"] > 0
        assert {r.status for r in runs.values()} == {RunStatus.COMPLETE}
        assert_one_invoice_per_bill(stack, {b.id for b in items})


async def test_429_storm_everything_delivered_within_the_fake_rate(settings: Settings) -> None:
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        await stack.configs(stripe_config())
        # The fake allows less than the published test-mode rate the limiter starts at.
        stack.fake.configure(
            rate_limits={"test_per_second": 10, "endpoint_per_second": 10, "retry_after_seconds": 1}
        )
        items = bills(30)
        async with running_router(stack.settings), stack.sink():
            await publish_bills(stack, items)
            runs = await stack.wait_final_runs(30, timeout=120)
        stats = stack.fake.stats
        assert stats["rate_limited"] > 0  # there was a storm
        assert stats["max_admitted_per_second"] <= 10
        # Waiting callers neither burst after a slow-down nor ignore Retry-After: what the
        # sink offers stays within the published test-mode limit (25/s) it starts from.
        assert stats["max_offered_per_second"] <= 25
        assert {r.status for r in runs.values()} == {RunStatus.COMPLETE}
        assert_one_invoice_per_bill(stack, {b.id for b in items})


async def test_rejected_credential_does_not_delay_another_configuration(
    settings: Settings,
) -> None:
    async with stripe_stack(settings, keys=(KEY,)) as stack:
        await stack.credential("cred-good", KEY)
        await stack.credential("cred-bad", "sk_test_revoked")
        good, bad = stripe_config("cfg-good", "cred-good"), stripe_config("cfg-bad", "cred-bad")
        await stack.configs(good, bad)
        items = bills(10)
        async with stack.sink():
            started = time.monotonic()
            await publish_envelopes(stack, bad, items)
            await publish_envelopes(stack, good, items)
            runs = await stack.wait_final_runs(20, timeout=60)
            elapsed = time.monotonic() - started
        by_cfg: dict[str, set[RunStatus]] = {}
        for r in runs.values():
            by_cfg.setdefault(r.integration_config_id, set()).add(r.status)
        assert by_cfg == {"cfg-good": {RunStatus.COMPLETE}, "cfg-bad": {RunStatus.AUTH_FAILED}}
        assert elapsed < 20  # no backoff chain behind the rejected credential
        _, events = await stack.results()
        assert {e.event_type for e in events} == {EventType.AUTHENTICATION_ERROR}
        assert len(events) == 10


async def test_missing_mapping_and_disabled_configuration(settings: Settings) -> None:
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        mapped = config(
            "cfg-map",
            "STRIPE_TEST",
            integrationCredentialsId="cred-1",
            entity={"useExternalMappingAccountCode": True},
        )
        off = stripe_config("cfg-off")
        await stack.configs(mapped, off)
        async with stack.sink():
            await publish_envelopes(stack, mapped, bills(1))
            await stack.configs(off.model_copy(update={"enabled": False, "version": 2}))
            await asyncio.sleep(1)
            await publish_envelopes(stack, off, bills(1, prefix="other"))
            runs = await stack.wait_final_runs(2)
        statuses = {r.integration_config_id: r.status for r in runs.values()}
        assert statuses == {"cfg-map": RunStatus.ERROR, "cfg-off": RunStatus.DISABLED}
        _, events = await stack.results()
        assert [e.event_type for e in events] == [EventType.MISSING_ACCOUNT_MAPPING]
        assert stack.fake.stats["requests"] == 0  # no provider call at all


async def test_sink_killed_mid_batch_and_restarted(settings: Settings) -> None:
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        cfg = stripe_config()
        await stack.configs(cfg)
        stack.fake.configure(faults={"latency_ms": 40})
        items = bills(40)
        env = {
            "BILLSYNC_STRIPE_API_BASE": stack.url,
            "BILLSYNC_CREDENTIALS_KEY": stack.key,
            "BILLSYNC_SINK_RETRY_BASE_DELAY": "0.05",
        }
        proc = start_service("services.stripe_sink", stack.settings, **env)
        try:
            await publish_envelopes(stack, cfg, items)
            deadline = time.monotonic() + 60
            while len(stack.fake.invoices()) < 8:
                assert time.monotonic() < deadline, "sink made no progress"
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = start_service("services.stripe_sink", stack.settings, **env)
            await stack.wait_final_runs(40, timeout=120)
            await asyncio.sleep(1)
        finally:
            proc.kill()
            proc.wait(10)
        assert_one_invoice_per_bill(stack, {b.id for b in items})
        for inv in stack.fake.invoices():
            assert inv["status"] == "open" and len(inv["lines"]["data"]) == 2
