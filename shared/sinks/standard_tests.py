"""The standard destination test suite (after the Meltano Singer SDK's standard target tests).

Every destination proves the same guarantees against its own fake provider, with no Kafka:

    class TestStripeStandard(DestinationStandardTests):
        @pytest.fixture
        async def harness(self) -> AsyncIterator[StandardHarness]:
            yield StripeHarness(...)

A `StandardHarness` supplies the destination, a credential, a configuration factory and
hooks into the fake (invoices_for, mark_finalized, inject, reject_credential, requests).

Two layers:
- the destination's own answers (classification, pre-flight validation, a recovering
  attempt) by calling `SinkDestination.deliver` directly, the second delivery of a bill
  carrying the map record the first one produced (`record_of`);
- everything again through the runner's delivery policy (`DeliveryPolicy` over a
  `MemoryPolicyState`): de-duplication of a redelivered dispatch, regeneration, retries
  after 5xx and after a write whose answer was dropped, recovery after a crash between
  the write and its record (a PENDING marker), finalized invoices left alone, rejected
  credentials;
- a stop during a retry wait through the whole `SinkRunner` on the test's broker (the
  `settings` fixture): the bill stays uncommitted and the next sink delivers it once.
  Rebalances belong to the Kafka side alone and are proven once for every sink
  (tests/integration/test_sink_guarantees.py, test_sink_consumer.py)."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest

from shared.contracts import (
    Account,
    Bill,
    DispatchEnvelope,
    ExternalMapping,
    ExternalSystem,
    IntegrationConfig,
    IntegrationEvent,
    IntegrationRun,
    LineItem,
    RunStatus,
    Trigger,
    dispatch_id,
)
from shared.credentials import Credential, CredentialCipher, generate_key
from shared.credentials.store import publish_credential, seal
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from shared.sinks.customers import BillMappings, bill_mappings
from shared.sinks.destination import (
    DeliveryRequest,
    DeliveryResult,
    ProviderCalls,
    SinkDestination,
)
from shared.sinks.errors import (
    AuthenticationError,
    FatalBillError,
    InvoiceLockedError,
    RateLimitedError,
    RetriableError,
)
from shared.sinks.invoice_map import InvoiceMapRecord, InvoiceState, map_key
from shared.sinks.options import SinkOptions
from shared.sinks.policy import DeliveryPolicy
from shared.sinks.ratelimit import AdaptiveRateLimiter, RateSpec
from shared.sinks.runner import SinkRunner, running_sink


class Fault(StrEnum):
    SERVER_ERROR = "server_error"  # the next write answers 5xx
    RATE_LIMITED = "rate_limited"  # the next request answers 429 with Retry-After
    DROP_AFTER_COMMIT = "drop_after_commit"  # the next write commits, then the line drops


@dataclass(frozen=True)
class ExternalInvoice:
    id: str
    total: Decimal  # major units, as the provider holds it
    state: InvoiceState | None = None


class StandardHarness(ABC):
    """What a destination's test module provides (a started fake behind it)."""

    destination: SinkDestination[Any]
    credential: Credential
    customer_id: str
    currency: str = "USD"

    @abstractmethod
    def config(self, *, editable: bool) -> IntegrationConfig:
        """A configuration for the fake. `editable`: invoices stay editable (drafts)."""

    def external_mappings(self) -> list[ExternalMapping]:
        """External mappings the destination needs beyond the customer (Paddle's Address):
        the runner's state holds them, and each request carries the bill's."""
        return []

    def bill_mappings(self, envelope: DispatchEnvelope) -> BillMappings:
        rows = self.external_mappings()
        return bill_mappings(
            envelope.bill,
            envelope.integration_config,
            self.destination.external_system,
            lambda system, m3ter_id: [
                m for m in rows if m.external_system is system and m.m3ter_id == m3ter_id
            ],
        )

    @abstractmethod
    async def invoices_for(self, bill_id: str) -> list[ExternalInvoice]:
        """The provider's invoices for this bill (any configuration)."""

    @abstractmethod
    async def mark_finalized(self, external_id: str) -> None:
        """Finalize (send, authorise) the invoice at the provider, as an operator would."""

    @abstractmethod
    async def inject(self, fault: Fault) -> None: ...

    @abstractmethod
    def reject_credential(self) -> Credential:
        """A credential the provider refuses (wrong or revoked key)."""

    @abstractmethod
    def requests(self) -> int:
        """Requests the fake has received so far."""

    def invalid_bill(self, bill: Bill) -> Bill:
        """`bill` changed so that the provider's rules refuse it (default: a huge line)."""
        huge = line("li-huge", Decimal("100000000"))
        return bill.model_copy(update={"line_items": [*bill.line_items, huge]})

    def account(self, bill: Bill) -> Account:
        return Account(
            id=bill.account_id, account_name="Standard Tests Inc", currency=bill.currency
        )

    def envelope(self, config: IntegrationConfig, bill: Bill) -> DispatchEnvelope:
        return generated_envelope(config, bill, self.account(bill))


def generated_envelope(
    config: IntegrationConfig, bill: Bill, account: Account, routed_at: datetime | None = None
) -> DispatchEnvelope:
    """The dispatch envelope the router builds for a generated bill and one configuration
    (routed now unless `routed_at` is given)."""
    return DispatchEnvelope(
        dispatch_id=dispatch_id(
            bill.id, bill.version, config.id, config.version, Trigger.GENERATED
        ),
        trigger=Trigger.GENERATED,
        integration_config_id=config.id,
        integration_config_version=config.version,
        integration_config=config,
        bill=bill,
        account=account,
        routed_at=(routed_at or datetime.now(UTC)).isoformat(),
    )


def line(ident: str, subtotal: Decimal, quantity: int = 1) -> LineItem:
    return LineItem(
        id=ident,
        line_item_type="USAGE",
        description=f"charge {ident}",
        quantity=Decimal(quantity),
        subtotal=subtotal,
        average_unit_price=subtotal / quantity,
    )


def standard_bill(
    bill_id: str,
    version: int = 1,
    currency: str = "USD",
    amounts: tuple[str, ...] = ("120.00", "30.50"),
) -> Bill:
    lines = [line(f"{bill_id}-l{i}", Decimal(a), 1 + i) for i, a in enumerate(amounts)]
    return Bill(
        id=bill_id,
        version=version,
        account_id="acc-standard",
        currency=currency,
        bill_total=sum((x.subtotal for x in lines), Decimal(0)),
        line_items=lines,
    )


def record_of(envelope: DispatchEnvelope, result: DeliveryResult) -> InvoiceMapRecord:
    """What the runner's invoice map holds after `result`."""
    return InvoiceMapRecord(
        integration_config_id=envelope.integration_config_id,
        bill_id=envelope.bill.id,
        bill_version=envelope.bill.version,
        state=result.state,
        external_id=result.external_id,
        url=result.url,
        external_item_ids=list(result.external_item_ids),
        completed_dispatch_ids=[envelope.dispatch_id],
        updated_at=datetime.now(UTC),
    )


@dataclass
class MemoryPolicyState:
    """The delivery policy's state in dictionaries (the runner's is Kafka)."""

    configs: dict[str, IntegrationConfig] = field(default_factory=dict)
    records: dict[str, InvoiceMapRecord] = field(default_factory=dict)
    credentials: dict[str, Credential] = field(default_factory=dict)
    mappings: list[ExternalMapping] = field(default_factory=list)
    results: list[IntegrationRun | IntegrationEvent] = field(default_factory=list)

    def config(self, config_id: str) -> IntegrationConfig | None:
        return self.configs.get(config_id)

    def mappings_for(self, system: ExternalSystem, account_id: str) -> list[ExternalMapping]:
        return [
            m for m in self.mappings if m.external_system is system and m.m3ter_id == account_id
        ]

    def invoice_record(self, key: str) -> InvoiceMapRecord | None:
        return self.records.get(key)

    def credential(self, credential_id: str) -> Credential | None:
        return self.credentials.get(credential_id)

    async def put_invoice_record(self, record: InvoiceMapRecord) -> None:
        self.records[record.key] = record

    async def send_result(self, record: IntegrationRun | IntegrationEvent) -> Awaitable[Any]:
        self.results.append(record)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def runs(self) -> list[IntegrationRun]:
        return [r for r in self.results if isinstance(r, IntegrationRun)]

    def events(self) -> list[IntegrationEvent]:
        return [r for r in self.results if isinstance(r, IntegrationEvent)]

    def final(self, envelope: DispatchEnvelope) -> IntegrationRun:
        """The last run record of this envelope's dispatch."""
        runs = [r for r in self.runs() if r.dispatch_id == envelope.dispatch_id]
        assert runs, f"no run for {envelope.dispatch_id}"
        return runs[-1]


RUNNER_OPTIONS = SinkOptions(max_attempts=5, retry_base_delay=0.01, retry_max_delay=0.05)


class DestinationStandardTests:
    """Inherit and override the `harness` fixture; every test below then runs."""

    @pytest.fixture
    def harness(self) -> StandardHarness:
        raise NotImplementedError("a destination's test module overrides `harness`")

    async def deliver(
        self,
        h: StandardHarness,
        envelope: DispatchEnvelope,
        *,
        existing: InvoiceMapRecord | None = None,
        recovering: bool = False,
        attempt: int = 1,
        credential: Credential | None = None,
    ) -> tuple[DeliveryResult, ProviderCalls]:
        dest = h.destination
        config = envelope.integration_config
        client = dest.make_client(config.destination, credential or h.credential)
        calls = ProviderCalls(dest.family, AdaptiveRateLimiter(RateSpec(None)), dest.classify)
        request = DeliveryRequest(
            envelope,
            config,
            h.customer_id,
            existing,
            recovering,
            attempt,
            f"run-{envelope.bill.id}-{attempt}",
            h.bill_mappings(envelope),
        )
        try:
            return await dest.deliver(request, client, calls), calls
        finally:
            await dest.close_client(client)

    async def test_new_bill_makes_one_invoice_with_the_bill_total(
        self, harness: StandardHarness
    ) -> None:
        bill = standard_bill("std-new", currency=harness.currency)
        result, _ = await self.deliver(
            harness, harness.envelope(harness.config(editable=False), bill)
        )
        assert result.status is RunStatus.COMPLETE
        assert result.external_id and result.url
        invoices = await harness.invoices_for(bill.id)
        assert [i.id for i in invoices] == [result.external_id]
        assert invoices[0].total == Decimal("150.50")

    async def test_same_request_twice_is_still_one_invoice(self, harness: StandardHarness) -> None:
        envelope = harness.envelope(
            harness.config(editable=False), standard_bill("std-twice", currency=harness.currency)
        )
        first, _ = await self.deliver(harness, envelope)
        second, _ = await self.deliver(harness, envelope, existing=record_of(envelope, first))
        assert second.status is RunStatus.COMPLETE
        assert second.external_id == first.external_id
        assert len(await harness.invoices_for("std-twice")) == 1

    async def test_regenerated_bill_updates_the_same_invoice(
        self, harness: StandardHarness
    ) -> None:
        config = harness.config(editable=True)
        v1 = harness.envelope(config, standard_bill("std-regen", 1, harness.currency))
        first, _ = await self.deliver(harness, v1)
        v2 = harness.envelope(
            config, standard_bill("std-regen", 2, harness.currency, ("200.00", "1.25", "3.00"))
        )
        second, _ = await self.deliver(harness, v2, existing=record_of(v1, first))
        assert second.status is RunStatus.COMPLETE
        assert second.external_id == first.external_id
        invoices = await harness.invoices_for("std-regen")
        assert [(i.id, i.total) for i in invoices] == [(first.external_id, Decimal("204.25"))]

    async def test_finalized_invoice_is_never_modified(self, harness: StandardHarness) -> None:
        config = harness.config(editable=True)
        v1 = harness.envelope(config, standard_bill("std-final", 1, harness.currency))
        first, _ = await self.deliver(harness, v1)
        assert first.external_id
        await harness.mark_finalized(first.external_id)
        v2 = harness.envelope(config, standard_bill("std-final", 2, harness.currency, ("999.00",)))
        try:
            second, _ = await self.deliver(harness, v2, existing=record_of(v1, first))
            assert second.status is RunStatus.INVOICE_ALREADY_PAID
            assert second.external_id == first.external_id and second.message
        except InvoiceLockedError:
            pass
        invoices = await harness.invoices_for("std-final")
        assert [i.total for i in invoices] == [Decimal("150.50")]

    async def test_server_error_is_retriable(self, harness: StandardHarness) -> None:
        await harness.inject(Fault.SERVER_ERROR)
        envelope = harness.envelope(
            harness.config(editable=False), standard_bill("std-5xx", currency=harness.currency)
        )
        with pytest.raises(RetriableError) as caught:
            await self.deliver(harness, envelope)
        assert not isinstance(caught.value, RateLimitedError)
        assert (caught.value.status_code or 0) >= 500

    async def test_retry_after_server_error_completes_once(self, harness: StandardHarness) -> None:
        await harness.inject(Fault.SERVER_ERROR)
        envelope = harness.envelope(
            harness.config(editable=False),
            standard_bill("std-5xx-retry", currency=harness.currency),
        )
        with pytest.raises(RetriableError):
            await self.deliver(harness, envelope)
        result, _ = await self.deliver(harness, envelope, recovering=True, attempt=2)
        assert result.status is RunStatus.COMPLETE
        assert [i.id for i in await harness.invoices_for("std-5xx-retry")] == [result.external_id]

    async def test_rate_limit_is_rate_limited_error(self, harness: StandardHarness) -> None:
        await harness.inject(Fault.RATE_LIMITED)
        envelope = harness.envelope(
            harness.config(editable=False), standard_bill("std-429", currency=harness.currency)
        )
        with pytest.raises(RateLimitedError) as caught:
            await self.deliver(harness, envelope)
        assert caught.value.retry_after is not None and caught.value.retry_after > 0

    async def test_rejected_credential_is_authentication_error(
        self, harness: StandardHarness
    ) -> None:
        envelope = harness.envelope(
            harness.config(editable=False), standard_bill("std-auth", currency=harness.currency)
        )
        with pytest.raises(AuthenticationError):
            await self.deliver(harness, envelope, credential=harness.reject_credential())
        assert await harness.invoices_for("std-auth") == []

    async def test_invalid_bill_is_fatal_before_any_call(self, harness: StandardHarness) -> None:
        bill = harness.invalid_bill(standard_bill("std-invalid", currency=harness.currency))
        envelope = harness.envelope(harness.config(editable=False), bill)
        before = harness.requests()
        dest = harness.destination
        calls = ProviderCalls(dest.family, AdaptiveRateLimiter(RateSpec(None)), dest.classify)
        client = dest.make_client(envelope.integration_config.destination, harness.credential)
        try:
            with pytest.raises(FatalBillError):
                await dest.deliver(
                    DeliveryRequest(
                        envelope,
                        envelope.integration_config,
                        harness.customer_id,
                        None,
                        False,
                        1,
                        "run",
                        harness.bill_mappings(envelope),
                    ),
                    client,
                    calls,
                )
        finally:
            await dest.close_client(client)
        assert calls.count == 0
        assert harness.requests() == before

    async def test_write_committed_before_a_drop_recovers_to_one_invoice(
        self, harness: StandardHarness
    ) -> None:
        await harness.inject(Fault.DROP_AFTER_COMMIT)
        envelope = harness.envelope(
            harness.config(editable=False), standard_bill("std-drop", currency=harness.currency)
        )
        with pytest.raises(RetriableError):
            await self.deliver(harness, envelope)
        result, _ = await self.deliver(harness, envelope, recovering=True, attempt=2)
        assert result.status is RunStatus.COMPLETE
        invoices = await harness.invoices_for("std-drop")
        assert [(i.id, i.total) for i in invoices] == [(result.external_id, Decimal("150.50"))]

    # ---- through the runner's delivery policy ------------------------------------

    def runner(
        self, h: StandardHarness, credential: Credential | None = None
    ) -> tuple[DeliveryPolicy, MemoryPolicyState]:
        """The runner's policy for this destination, with the customer already mapped."""
        state = MemoryPolicyState()
        cred = credential or h.credential
        state.credentials[cred.id] = cred
        state.mappings.append(
            ExternalMapping(
                id="map-standard",
                external_system=h.destination.external_system,
                external_table=h.destination.customer_table,
                external_id=h.customer_id,
                m3ter_entity="Account",
                m3ter_id="acc-standard",
            )
        )
        state.mappings.extend(h.external_mappings())
        return DeliveryPolicy(h.destination, state, RUNNER_OPTIONS), state

    @staticmethod
    def mapped(config: IntegrationConfig) -> IntegrationConfig:
        """The configuration resolving customers through external mappings (the runner
        maps acc-standard to the harness's customer)."""
        entity = config.entity_config.model_copy(update={"use_external_mapping_account_code": True})
        return config.model_copy(update={"entity_config": entity})

    async def test_runner_delivers_once_and_recognises_the_redelivery(
        self, harness: StandardHarness
    ) -> None:
        policy, state = self.runner(harness)
        envelope = harness.envelope(
            self.mapped(harness.config(editable=False)),
            standard_bill("run-once", currency=harness.currency),
        )
        try:
            await policy.process(envelope)
            before = harness.requests()
            await policy.process(envelope)  # redelivered after a crash before the commit
        finally:
            await policy.close()
        final = state.final(envelope)
        assert final.status is RunStatus.COMPLETE, (final.status, final.error)
        assert final.external_id and final.url
        assert harness.requests() == before  # recognised by its dispatch id: no call
        invoices = await harness.invoices_for("run-once")
        assert [(i.id, i.total) for i in invoices] == [(final.external_id, Decimal("150.50"))]

    async def test_runner_regeneration_updates_the_same_invoice(
        self, harness: StandardHarness
    ) -> None:
        policy, state = self.runner(harness)
        config = self.mapped(harness.config(editable=True))
        v1 = harness.envelope(config, standard_bill("run-regen", 1, harness.currency))
        v2 = harness.envelope(
            config, standard_bill("run-regen", 2, harness.currency, ("200.00", "1.25", "3.00"))
        )
        try:
            await policy.process(v1)
            await policy.process(v2)
        finally:
            await policy.close()
        first, second = state.final(v1), state.final(v2)
        assert second.status is RunStatus.COMPLETE and second.external_id == first.external_id
        invoices = await harness.invoices_for("run-regen")
        assert [(i.id, i.total) for i in invoices] == [(first.external_id, Decimal("204.25"))]

    @pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.DROP_AFTER_COMMIT])
    async def test_runner_retries_a_failed_write_to_one_invoice(
        self, harness: StandardHarness, fault: Fault
    ) -> None:
        policy, state = self.runner(harness)
        bill_id = f"run-{fault.value}"
        envelope = harness.envelope(
            self.mapped(harness.config(editable=False)),
            standard_bill(bill_id, currency=harness.currency),
        )
        await harness.inject(fault)
        try:
            await policy.process(envelope)
        finally:
            await policy.close()
        final = state.final(envelope)
        assert final.status is RunStatus.COMPLETE and final.attempt >= 2
        invoices = await harness.invoices_for(bill_id)
        assert [(i.id, i.total) for i in invoices] == [(final.external_id, Decimal("150.50"))]

    async def test_runner_recovers_after_a_crash_between_write_and_record(
        self, harness: StandardHarness
    ) -> None:
        """The provider holds the invoice, the map only the PENDING marker: the next
        delivery looks it up instead of writing a second one."""
        envelope = harness.envelope(
            self.mapped(harness.config(editable=False)),
            standard_bill("run-crash", currency=harness.currency),
        )
        await self.deliver(harness, envelope)  # the write the crashed sink made
        policy, state = self.runner(harness)
        state.records[map_key(envelope.integration_config_id, "run-crash")] = InvoiceMapRecord(
            integration_config_id=envelope.integration_config_id,
            bill_id="run-crash",
            bill_version=1,
            state=InvoiceState.PENDING,
            updated_at=datetime.now(UTC),
        )
        try:
            await policy.process(envelope)
        finally:
            await policy.close()
        final = state.final(envelope)
        assert final.status is RunStatus.COMPLETE
        assert [i.id for i in await harness.invoices_for("run-crash")] == [final.external_id]

    async def test_runner_leaves_a_finalized_invoice_alone(self, harness: StandardHarness) -> None:
        policy, state = self.runner(harness)
        config = self.mapped(harness.config(editable=True))
        v1 = harness.envelope(config, standard_bill("run-final", 1, harness.currency))
        v2 = harness.envelope(config, standard_bill("run-final", 2, harness.currency, ("9.00",)))
        try:
            await policy.process(v1)
            external_id = state.final(v1).external_id
            assert external_id
            await harness.mark_finalized(external_id)
            await policy.process(v2)
        finally:
            await policy.close()
        assert state.final(v2).status is RunStatus.INVOICE_ALREADY_PAID
        assert [i.total for i in await harness.invoices_for("run-final")] == [Decimal("150.50")]

    async def test_runner_rejected_credential_is_auth_failed(
        self, harness: StandardHarness
    ) -> None:
        policy, state = self.runner(harness, harness.reject_credential())
        config = self.mapped(harness.config(editable=False))
        envelope = harness.envelope(config, standard_bill("run-auth", currency=harness.currency))
        try:
            await policy.process(envelope)
        finally:
            await policy.close()
        assert state.final(envelope).status is RunStatus.AUTH_FAILED
        assert await harness.invoices_for("run-auth") == []

    # ---- through the whole runner on a broker: a stop mid-retry -------------------

    async def test_runner_stop_during_a_retry_leaves_the_bill_to_the_next_sink(
        self, harness: StandardHarness, settings: Settings
    ) -> None:
        """A bill waiting for its retry when the sink stops is not committed: the next
        sink delivers it, once. (`settings` is the test session's broker namespace.)"""
        cipher = CredentialCipher(generate_key())
        config = self.mapped(harness.config(editable=False))
        envelope = harness.envelope(config, standard_bill("run-stop", currency=harness.currency))
        await ensure_topics(settings)
        producer = make_producer(settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            cred = harness.credential
            await publish_credential(
                producer, settings.topics.name("credentials"), seal(cred, cipher)
            )
            mappings = self.runner(harness)[1].mappings
            for topic, key, value in (
                ("integration_configs", config.id, config.to_bytes()),
                *(("external_mappings", m.id, m.to_bytes()) for m in mappings),
            ):
                await producer.send_and_wait(settings.topics.name(topic), value, key=key.encode())
            await harness.inject(Fault.SERVER_ERROR)
            await producer.send_and_wait(
                settings.topics.dispatch(harness.destination.family),
                envelope.to_bytes(),
                key=config.id.encode(),
            )
        finally:
            await producer.stop()
        slow = RUNNER_OPTIONS.model_copy(update={"retry_base_delay": 30, "retry_max_delay": 30})
        first = SinkRunner(settings, harness.destination, slow, cipher)
        before = harness.requests()
        async with running_sink(first), asyncio.timeout(60):
            while not (harness.requests() > before and _in_retry_wait(first, "run-stop")):  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # the retry wait has no event to wait on
        assert await harness.invoices_for("run-stop") == []
        second = SinkRunner(settings, harness.destination, RUNNER_OPTIONS, cipher)
        async with running_sink(second), asyncio.timeout(60):
            while second.policy.delivered < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert len(await harness.invoices_for("run-stop")) == 1


def _in_retry_wait(runner: SinkRunner, bill_id: str) -> bool:
    """The bill's delivery was tried and now waits (not delivering) in the runner."""
    waiting = any(key.endswith("\x1f" + bill_id) for key in runner.policy._waiting)
    tried = bool(runner.policy._run_attempt)
    return waiting and tried and not runner.consumer._busy
