"""The standard destination suite for the batch path, run through the runner.

Every batching destination proves, against its own fake and the real broker, what the
batch contract promises: a backlog goes out in batches of at most `max_size`; one bad bill
fails alone; a whole-batch failure reaches every member and is retried to exactly one
invoice per bill; a redelivered envelope writes nothing; a regenerated bill updates its
invoice; a finalized invoice is never changed; a write committed before a dropped
connection recovers to one invoice; batches never mix credentials, tenants or settings.

    class TestXeroBatchStandard(BatchStandardTests):
        @pytest.fixture
        def harness(self, fake_xero) -> BatchHarness:
            return XeroHarness(fake_xero)

The test module must also have the `settings` fixture (tests/conftest.py provides it)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from shared.contracts import (
    Account,
    Bill,
    DispatchEnvelope,
    IntegrationConfig,
    IntegrationEvent,
    IntegrationRun,
    ResultRecordAdapter,
    RunStatus,
)
from shared.credentials import Credential, CredentialCipher, generate_key
from shared.credentials.store import publish_credential, seal
from shared.kafka.client_options import kafka_options
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.lifecycle import cancel_and_wait
from shared.settings import Settings
from shared.sinks.batching import BatchDestination
from shared.sinks.options import SinkOptions
from shared.sinks.partitioning import dispatch_key
from shared.sinks.runner import SinkRunner, running_sink
from shared.sinks.standard_tests import ExternalInvoice, Fault, generated_envelope, standard_bill

FAST = SinkOptions(max_attempts=6, retry_base_delay=0.05, retry_max_delay=0.3, commit_interval=0.2)


@dataclass(frozen=True)
class BatchCall:
    """One batch call the provider received: whose it was, and which bills it carried."""

    scope: str  # credential / tenant the call was made for
    bill_ids: tuple[str, ...]
    config_ids: tuple[str, ...]


class BatchHarness(ABC):
    """What a batching destination's test module provides (a started fake behind it).
    Its destination's batch policy should be small (e.g. 10 bills, 0.3 s linger)."""

    destination: BatchDestination[Any]

    @abstractmethod
    def credential(self, index: int) -> Credential:
        """A working credential; different indexes are different credentials/tenants."""

    @abstractmethod
    def rejected_credential(self) -> Credential:
        """A credential the provider refuses."""

    @abstractmethod
    def config(self, config_id: str, credential_id: str, *, variant: int = 0) -> IntegrationConfig:
        """A configuration; a different `variant` has different destination settings."""

    @abstractmethod
    async def invoices_for(self, bill_id: str) -> list[ExternalInvoice]: ...

    @abstractmethod
    async def mark_finalized(self, external_id: str) -> None: ...

    @abstractmethod
    async def inject(self, fault: Fault) -> None: ...

    @abstractmethod
    def calls(self) -> list[BatchCall]:
        """The batch calls the provider admitted, in order."""

    def invalid_bill(self, bill: Bill) -> Bill:
        """`bill` changed so that the provider's rules refuse it (default: a huge total)."""
        huge = Decimal("100000000")
        return bill.model_copy(update={"bill_total": huge})


class BatchStack:
    def __init__(self, settings: Settings, harness: BatchHarness, key: str) -> None:
        self.settings = settings
        self.harness = harness
        self.cipher = CredentialCipher(key)
        self.runs: dict[str, IntegrationRun] = {}
        self.events: list[IntegrationEvent] = []

    async def credentials(self, *credentials: Credential) -> None:
        producer = make_producer(self.settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            for credential in credentials:
                await publish_credential(
                    producer,
                    self.settings.topics.name("credentials"),
                    seal(credential, self.cipher),
                )
        finally:
            await producer.stop()

    async def send(self, *envelopes: DispatchEnvelope) -> None:
        producer = make_producer(self.settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            topic = self.settings.topics.dispatch(self.harness.destination.family)
            for envelope in envelopes:
                key = dispatch_key(envelope.integration_config).encode()
                await producer.send(topic, envelope.to_bytes(), key=key)
            await producer.flush()
        finally:
            await producer.stop()

    def runner(self) -> SinkRunner:
        return SinkRunner(self.settings, self.harness.destination, FAST, self.cipher)

    @contextlib.asynccontextmanager
    async def sink(self) -> AsyncIterator[SinkRunner]:
        async with running_sink(self.runner()) as runner:
            yield runner

    async def follow_results(self) -> None:
        """Keep every run (latest record per run id) and event from integration-results."""
        consumer = AIOKafkaConsumer(
            self.settings.topics.name("integration_results"),
            **kafka_options(self.settings.kafka_bootstrap_servers),
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        item = ResultRecordAdapter.validate_json(record.value or b"")
                        if isinstance(item, IntegrationRun):
                            self.runs[item.id] = item
                        elif isinstance(item, IntegrationEvent):
                            self.events.append(item)
        finally:
            await consumer.stop()

    async def results(self) -> tuple[dict[str, IntegrationRun], list[IntegrationEvent]]:
        return dict(self.runs), list(self.events)

    async def final_runs(
        self, bill_ids: list[str], timeout: float = 60.0
    ) -> dict[str, IntegrationRun]:
        """The final run of each bill (by bill id), waiting until all are final."""
        deadline = time.monotonic() + timeout
        final: dict[str, IntegrationRun] = {}
        while time.monotonic() < deadline:
            runs, _ = await self.results()
            final = {r.entity_id: r for r in runs.values() if r.status.is_final}
            if all(b in final for b in bill_ids):
                return {b: final[b] for b in bill_ids}
            await asyncio.sleep(0.2)
        missing = [b for b in bill_ids if b not in final]
        raise AssertionError(f"no final run after {timeout}s for {missing[:5]}")


def envelope(config: IntegrationConfig, bill: Bill) -> DispatchEnvelope:
    owner = Account(id=bill.account_id, account_name="Batch Tests Inc", currency=bill.currency)
    return generated_envelope(config, bill, owner)


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def _deduplicated(family: str) -> float:
    value = REGISTRY.get_sample_value("billsync_sink_deduplicated_total", {"destination": family})
    return value or 0.0


@contextlib.asynccontextmanager
async def batch_stack(settings: Settings, harness: BatchHarness) -> AsyncIterator[BatchStack]:
    """Topics, a credentials key, the harness's credentials, and results followed."""
    key = generate_key()
    settings = settings.model_copy(update={"credentials_key": key})
    await ensure_topics(settings)
    stack = BatchStack(settings, harness, key)
    await stack.credentials(
        harness.credential(0), harness.credential(1), harness.rejected_credential()
    )
    follower = asyncio.create_task(stack.follow_results())
    try:
        yield stack
    finally:
        await cancel_and_wait(follower)


class BatchStandardTests:
    """Inherit and override the `harness` fixture; every test below then runs."""

    @pytest.fixture
    def harness(self) -> BatchHarness:
        raise NotImplementedError("a destination's test module overrides `harness`")

    @pytest.fixture
    async def stack(self, settings: Settings, harness: BatchHarness) -> AsyncIterator[BatchStack]:
        async with batch_stack(settings, harness) as stack:
            yield stack

    async def test_a_backlog_goes_out_in_batches_one_invoice_per_bill(
        self, stack: BatchStack
    ) -> None:
        h = stack.harness
        config = h.config("cfg-backlog", h.credential(0).id)
        bills = [standard_bill(f"bk-{i:02d}") for i in range(25)]
        await stack.send(*(envelope(config, b) for b in bills))
        async with stack.sink():
            runs = await stack.final_runs([b.id for b in bills])
        assert {r.status for r in runs.values()} == {RunStatus.COMPLETE}
        for b in bills:
            invoices = await h.invoices_for(b.id)
            assert [i.id for i in invoices] == [runs[b.id].external_id]
            assert invoices[0].total == Decimal("150.50")
        calls = [c for c in h.calls() if c.config_ids == ("cfg-backlog",) * len(c.config_ids)]
        assert sum(len(c.bill_ids) for c in calls) == 25
        assert len(calls) < 25 and max(len(c.bill_ids) for c in calls) <= (
            h.destination.batch_policy.max_size
        )

    async def test_one_bad_bill_fails_alone(self, stack: BatchStack) -> None:
        h = stack.harness
        config = h.config("cfg-bad", h.credential(0).id)
        good = [standard_bill(f"ok-{i}") for i in range(4)]
        bad = h.invalid_bill(standard_bill("bad-1"))
        await stack.send(*(envelope(config, b) for b in [*good[:2], bad, *good[2:]]))
        async with stack.sink():
            runs = await stack.final_runs([b.id for b in [*good, bad]])
        assert runs["bad-1"].status is RunStatus.ERROR and runs["bad-1"].error
        assert all(runs[b.id].status is RunStatus.COMPLETE for b in good)
        assert await h.invoices_for("bad-1") == []
        _, events = await stack.results()
        assert [e.entity_id for e in events] == ["bad-1"]

    async def test_a_whole_batch_failure_is_retried_to_one_invoice_each(
        self, stack: BatchStack
    ) -> None:
        await _one_invoice_each_despite(stack, Fault.SERVER_ERROR, "cfg-5xx", "s5", 5)

    async def test_a_whole_batch_auth_failure_reaches_every_member(self, stack: BatchStack) -> None:
        h = stack.harness
        config = h.config("cfg-auth", h.rejected_credential().id)
        bills = [standard_bill(f"au-{i}") for i in range(3)]
        await stack.send(*(envelope(config, b) for b in bills))
        async with stack.sink():
            runs = await stack.final_runs([b.id for b in bills])
        assert {r.status for r in runs.values()} == {RunStatus.AUTH_FAILED}

    async def test_a_redelivered_envelope_writes_nothing(self, stack: BatchStack) -> None:
        h = stack.harness
        config = h.config("cfg-dup", h.credential(0).id)
        first = envelope(config, standard_bill("dup-1"))
        await stack.send(first)
        async with stack.sink():
            await stack.final_runs(["dup-1"])
            calls, before = len(h.calls()), _deduplicated(h.destination.family)
            await stack.send(first)
            await until(lambda: _deduplicated(h.destination.family) > before)
        assert len(h.calls()) == calls
        assert len(await h.invoices_for("dup-1")) == 1

    async def test_a_regenerated_bill_updates_its_invoice(self, stack: BatchStack) -> None:
        h = stack.harness
        config = h.config("cfg-regen", h.credential(0).id)
        async with stack.sink():
            await stack.send(envelope(config, standard_bill("rg-1", 1)))
            first = (await stack.final_runs(["rg-1"]))["rg-1"]
            v2 = standard_bill("rg-1", 2, amounts=("200.00", "1.25", "3.00"))
            await stack.send(envelope(config, v2))
            deadline = time.monotonic() + 30
            while True:
                runs, _ = await stack.results()
                latest = [r for r in runs.values() if r.entity_version == 2 and r.status.is_final]
                if latest or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
        assert latest and latest[0].status is RunStatus.COMPLETE
        assert latest[0].external_id == first.external_id
        invoices = await h.invoices_for("rg-1")
        assert [(i.id, i.total) for i in invoices] == [(first.external_id, Decimal("204.25"))]

    async def test_a_finalized_invoice_is_never_changed(self, stack: BatchStack) -> None:
        h = stack.harness
        config = h.config("cfg-final", h.credential(0).id)
        async with stack.sink():
            await stack.send(envelope(config, standard_bill("fin-1", 1)))
            first = (await stack.final_runs(["fin-1"]))["fin-1"]
            assert first.external_id
            await h.mark_finalized(first.external_id)
            await stack.send(envelope(config, standard_bill("fin-1", 2, amounts=("999.00",))))
            deadline = time.monotonic() + 30
            while True:
                runs, _ = await stack.results()
                latest = [r for r in runs.values() if r.entity_version == 2 and r.status.is_final]
                if latest or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
        assert latest and latest[0].status is RunStatus.INVOICE_ALREADY_PAID
        assert [i.total for i in await h.invoices_for("fin-1")] == [Decimal("150.50")]

    async def test_a_write_committed_before_a_drop_recovers_to_one_invoice(
        self, stack: BatchStack
    ) -> None:
        await _one_invoice_each_despite(stack, Fault.DROP_AFTER_COMMIT, "cfg-drop", "dr", 3)

    async def test_batches_never_mix_credentials_tenants_or_settings(
        self, stack: BatchStack
    ) -> None:
        h = stack.harness
        a = h.config("cfg-mix-a", h.credential(0).id)
        b = h.config("cfg-mix-b", h.credential(1).id)
        c = h.config("cfg-mix-c", h.credential(0).id, variant=1)
        d = h.config("cfg-mix-d", h.credential(0).id)  # same credential and settings as a
        envelopes = [
            envelope(cfg, standard_bill(f"mx-{cfg.id}-{i}"))
            for i in range(6)
            for cfg in (a, b, c, d)
        ]
        await stack.send(*envelopes)
        async with stack.sink():
            await stack.final_runs([e.bill.id for e in envelopes])
        groups = {"cfg-mix-a": "A", "cfg-mix-d": "A", "cfg-mix-b": "B", "cfg-mix-c": "C"}
        for call in h.calls():
            mine = [groups[c] for c in call.config_ids if c in groups]
            assert len(set(mine)) <= 1, f"a batch mixed {sorted(set(call.config_ids))}"


async def _one_invoice_each_despite(
    stack: BatchStack, fault: Fault, config_id: str, prefix: str, count: int
) -> None:
    """A batch hit by `fault` ends with every run COMPLETE and one invoice per bill."""
    h = stack.harness
    await h.inject(fault)
    config = h.config(config_id, h.credential(0).id)
    bills = [standard_bill(f"{prefix}-{i}") for i in range(count)]
    await stack.send(*(envelope(config, b) for b in bills))
    async with stack.sink():
        runs = await stack.final_runs([b.id for b in bills])
    assert {r.status for r in runs.values()} == {RunStatus.COMPLETE}
    for b in bills:
        assert len(await h.invoices_for(b.id)) == 1
