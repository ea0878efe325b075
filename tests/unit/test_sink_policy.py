"""The sink's delivery policy without a broker: de-duplication, stale versions, disabled
configurations, PENDING recovery, retries, run records and internal errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from services.router.envelopes import EnvelopeBuilder
from shared.contracts import (
    DispatchEnvelope,
    EventType,
    ExternalMapping,
    ExternalSystem,
    IntegrationConfig,
    RunStatus,
    Trigger,
)
from shared.credentials import StripeCredential
from shared.sinks import policy as policy_module
from shared.sinks.destination import DeliveryRequest, DeliveryResult, ProviderCalls, SinkDestination
from shared.sinks.errors import FatalBillError, RetriableError
from shared.sinks.invoice_map import InvoiceMapRecord, InvoiceState, map_key
from shared.sinks.options import SinkOptions
from shared.sinks.policy import DeliveryPolicy, run_id_for
from shared.sinks.standard_tests import MemoryPolicyState
from tests.support.builders import account, bill, config, line
from tests.support.destinations import NoProvider
from tests.support.limiters import GateLimiter, outlast

FAST = SinkOptions(max_attempts=4, retry_base_delay=0.001, retry_max_delay=0.002)


MemoryState = MemoryPolicyState


class Scripted(NoProvider, SinkDestination[None]):
    """Answers each delivery with the next scripted outcome; records the requests."""

    family = "stripe"
    external_system = ExternalSystem.STRIPE
    customer_table = "Customer"
    credential_type = StripeCredential

    def __init__(self, *outcomes: DeliveryResult | Exception) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[DeliveryRequest] = []
        self.states_seen: list[InvoiceState | None] = []
        self.state: MemoryState | None = None

    async def deliver(
        self, request: DeliveryRequest, client: None, calls: ProviderCalls
    ) -> DeliveryResult:
        self.requests.append(request)
        if self.state is not None:  # what the map holds while the provider is called
            key = map_key(request.config.id, request.envelope.bill.id)
            record = self.state.records.get(key)
            self.states_seen.append(record.state if record else None)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


DONE = DeliveryResult(RunStatus.COMPLETE, InvoiceState.FINALIZED, "in_1", "https://x/in_1")


def envelope(version: int = 1, cfg: IntegrationConfig | None = None) -> DispatchEnvelope:
    cfg = cfg or config("cfg-1", "STRIPE_TEST", integrationCredentialsId="cred-1")
    b = bill("bill-1", "acc-1", version=version, embed=account("acc-1"), lines=[line("l1")])
    [(_, _, body)] = EnvelopeBuilder().build(b, b.account, [cfg], Trigger.GENERATED, "t/0/0")
    return DispatchEnvelope.model_validate_json(body)


def setup(*outcomes: DeliveryResult | Exception) -> tuple[DeliveryPolicy, Scripted, MemoryState]:
    state = MemoryState()
    state.credentials["cred-1"] = StripeCredential(id="cred-1", api_key=SecretStr("sk_test_1"))
    dest = Scripted(*outcomes)
    dest.state = state
    return DeliveryPolicy(dest, state, FAST), dest, state


def statuses(state: MemoryState) -> list[str]:
    return [r.status.value for r in state.runs()]


async def test_delivered_once_then_recognised_by_dispatch_id() -> None:
    policy, dest, state = setup(DONE)
    env = envelope()
    await policy.process(env)
    await policy.process(env)  # redelivered after a crash before the commit
    assert len(dest.requests) == 1
    assert statuses(state) == ["STARTED", "COMPLETE", "COMPLETE"]
    record = state.records[map_key("cfg-1", "bill-1")]
    assert record.has_completed(env.dispatch_id) and record.external_id == "in_1"
    # While the provider was called, the map said PENDING (a crash then means: look up).
    assert dest.states_seen == [InvoiceState.PENDING]


async def test_an_older_version_than_the_delivered_one_is_skipped() -> None:
    policy, dest, state = setup(DONE)
    await policy.process(envelope(version=2))
    await policy.process(envelope(version=1))
    assert len(dest.requests) == 1
    assert state.runs()[-1].status is RunStatus.SKIPPED
    assert "older than version 2" in (state.runs()[-1].error or "")


async def test_disabled_configuration_makes_no_call() -> None:
    policy, dest, state = setup()
    env = envelope()
    state.configs["cfg-1"] = env.integration_config.model_copy(update={"enabled": False})
    await policy.process(env)
    assert dest.requests == [] and statuses(state) == ["DISABLED"]


async def test_pending_record_from_a_crash_makes_the_first_attempt_recover() -> None:
    policy, dest, state = setup(DONE)
    env = envelope()
    pending = InvoiceMapRecord(
        integration_config_id="cfg-1",
        bill_id="bill-1",
        bill_version=1,
        state=InvoiceState.PENDING,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    state.records[pending.key] = pending
    await policy.process(env)
    assert [r.recovering for r in dest.requests] == [True]


async def test_retries_recover_and_the_final_record_carries_the_attempt() -> None:
    policy, dest, state = setup(RetriableError("503"), RetriableError("no answer"), DONE)
    await policy.process(envelope())
    assert [(r.attempt, r.recovering) for r in dest.requests] == [(1, False), (2, True), (3, True)]
    runs = state.runs()
    assert [r.status.value for r in runs] == [
        "STARTED",
        "AWAITING_RETRY",
        "AWAITING_RETRY",
        "COMPLETE",
    ]
    assert [r.attempt for r in runs] == [1, 1, 2, 3]
    assert len({r.id for r in runs}) == 1 and runs[0].id == run_id_for(runs[0].dispatch_id or "")


async def test_gives_up_after_max_attempts_with_an_operator_message() -> None:
    policy, _dest, state = setup(*[RetriableError("Stripe 500")] * 4)
    await policy.process(envelope())
    final = state.runs()[-1]
    assert final.status is RunStatus.ERROR and final.attempt == 4
    assert final.error == "gave up after 4 attempts: Stripe 500"
    assert [e.event_type for e in state.events()] == [EventType.PERFORM_ERROR]


async def test_refused_bill_is_a_validation_error_not_retried() -> None:
    policy, dest, state = setup(FatalBillError("amount too large", status_code=400))
    await policy.process(envelope())
    assert len(dest.requests) == 1 and statuses(state) == ["STARTED", "ERROR"]
    assert [e.event_type for e in state.events()] == [EventType.VALIDATION_ERROR]


async def test_a_bug_is_an_internal_error_without_a_repr() -> None:
    policy, _dest, state = setup(KeyError("secret-ish detail"))
    await policy.process(envelope())
    [event] = state.events()
    assert event.event_type is EventType.INTERNAL_ERROR
    assert "secret-ish" not in event.message and "KeyError" not in event.message
    assert state.runs()[-1].status is RunStatus.ERROR


async def test_only_the_newest_waiting_version_is_sent() -> None:
    gate = asyncio.Event()

    class Slow(Scripted):
        async def deliver(
            self, request: DeliveryRequest, client: None, calls: ProviderCalls
        ) -> DeliveryResult:
            if request.attempt == 1 and request.envelope.bill.version == 1:
                await gate.wait()
                raise RetriableError("503")
            return await super().deliver(request, client, calls)

    state = MemoryState()
    state.credentials["cred-1"] = StripeCredential(id="cred-1", api_key=SecretStr("sk_test_1"))
    dest = Slow(DONE)
    policy = DeliveryPolicy(dest, state, FAST)
    first = asyncio.create_task(policy.process(envelope(version=1)))
    await asyncio.sleep(0)  # version 1 holds the bill's lock
    later = [asyncio.create_task(policy.process(envelope(version=v))) for v in (2, 3)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *later)
    final = {r.entity_version: r.status for r in state.runs() if r.status.is_final}
    assert final == {1: RunStatus.SKIPPED, 2: RunStatus.SKIPPED, 3: RunStatus.COMPLETE}
    assert [r.envelope.bill.version for r in dest.requests] == [3]


@pytest.mark.parametrize("cred", [None, "cred-missing"])
async def test_missing_credential_is_auth_failed_without_a_call(cred: str | None) -> None:
    policy, dest, state = setup()
    cfg = config("cfg-1", "STRIPE_TEST", integrationCredentialsId=cred)
    await policy.process(envelope(cfg=cfg))
    assert dest.requests == [] and statuses(state) == ["AUTH_FAILED"]


async def test_giving_up_removes_what_a_first_delivery_left_half_written() -> None:
    class Abandoning(Scripted):
        abandoned: list[DeliveryRequest] = []

        async def abandon(
            self, request: DeliveryRequest, client: None, calls: ProviderCalls
        ) -> str | None:
            self.abandoned.append(request)
            return "removed the incomplete draft in_9"

    state = MemoryState()
    state.credentials["cred-1"] = StripeCredential(id="cred-1", api_key=SecretStr("sk_test_1"))
    dest = Abandoning(*[RetriableError("Stripe 500")] * 4)
    await DeliveryPolicy(dest, state, FAST).process(envelope())
    assert [r.recovering for r in dest.abandoned] == [True]
    final = state.runs()[-1]
    assert final.error == "gave up after 4 attempts: Stripe 500; removed the incomplete draft in_9"
    # A bill delivered before keeps its invoice when a later version gives up.
    state = MemoryState()
    state.credentials["cred-1"] = StripeCredential(id="cred-1", api_key=SecretStr("sk_test_1"))
    dest = Abandoning(DONE, *[RetriableError("Stripe 500")] * 4)
    dest.abandoned = []
    policy = DeliveryPolicy(dest, state, FAST)
    await policy.process(envelope(version=1))
    await policy.process(envelope(version=2))
    assert state.runs()[-1].status is RunStatus.ERROR and dest.abandoned == []


async def test_the_request_carries_the_bills_mappings_and_the_customer_table_decides() -> None:
    policy, dest, state = setup(DONE)
    cfg = config(
        "cfg-1",
        "STRIPE_TEST",
        integrationCredentialsId="cred-1",
        entity={"useExternalMappingAccountCode": True},
    )
    b = bill("bill-1", "acc-1", embed=account("acc-1"), lines=[line("l1", productId="prod-a")])
    [(_, _, body)] = EnvelopeBuilder().build(b, b.account, [cfg], Trigger.GENERATED, "t/0/0")

    def row(mid: str, table: str, ext: str, entity: str = "Account", of: str = "acc-1") -> None:
        state.mappings.append(
            ExternalMapping(
                id=mid,
                external_system=ExternalSystem.STRIPE,
                external_table=table,
                external_id=ext,
                m3ter_entity=entity,
                m3ter_id=of,
                integration_config_id="cfg-1" if table == "Address" else None,
            )
        )

    row("a-address", "Address", "addr_1")  # ranks first without the table rule
    row("b-customer", "Customer", "cus_1")
    row("c-product", "Product", "prod_1", "Product", "prod-a")
    row("d-other", "Customer", "cus_2", of="acc-2")
    await policy.process(DispatchEnvelope.model_validate_json(body))
    assert statuses(state) == ["STARTED", "COMPLETE"]
    [request] = dest.requests
    assert request.customer_id == "cus_1"
    assert [m.id for m in request.mappings.rows] == ["a-address", "b-customer", "c-product"]
    product = request.mappings.for_product("prod-a", "Product")
    assert product is not None and product.external_id == "prod_1"


class Calling(Scripted):
    """Makes its one provider call through the call wrapper (limiter, then timeout)."""

    async def deliver(
        self, request: DeliveryRequest, client: None, calls: ProviderCalls
    ) -> DeliveryResult:
        async def post() -> DeliveryResult:
            return await Scripted.deliver(self, request, client, calls)

        return await calls.call("POST /v1/invoices", post, write=True)


CALL_TIMEOUT = 0.05
ONE_TRY = SinkOptions(max_attempts=1, delivery_timeout=CALL_TIMEOUT)


async def test_waiting_for_the_limiter_is_not_the_delivery_timing_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = GateLimiter()
    monkeypatch.setattr(policy_module, "AdaptiveRateLimiter", lambda spec: gate)
    state = MemoryState()
    state.credentials["cred-1"] = StripeCredential(id="cred-1", api_key=SecretStr("sk_test_1"))
    dest = Calling(DONE)
    delivery = asyncio.create_task(DeliveryPolicy(dest, state, ONE_TRY).process(envelope()))
    await gate.until_waiting(1)
    await outlast(CALL_TIMEOUT)  # longer than the timeout, counted after the call queued
    await gate.admit(1)
    await delivery
    assert statuses(state) == ["STARTED", "COMPLETE"] and len(dest.requests) == 1


async def test_a_call_without_an_answer_still_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    class Silent(Calling):
        async def deliver(
            self, request: DeliveryRequest, client: None, calls: ProviderCalls
        ) -> DeliveryResult:
            async def post() -> DeliveryResult:
                await asyncio.Event().wait()  # the provider never answers
                raise AssertionError("unreachable")

            return await calls.call("POST /v1/invoices", post, write=True)

    state = MemoryState()
    state.credentials["cred-1"] = StripeCredential(id="cred-1", api_key=SecretStr("sk_test_1"))
    await DeliveryPolicy(Silent(), state, ONE_TRY).process(envelope())
    final = state.runs()[-1]
    assert final.status is RunStatus.TIMEOUT_LIMIT_EXCEEDED
    assert "no answer within 0.05s (POST /v1/invoices)" in (final.error or "")
