"""Monitor counting rules (pure): what counts, what resets, idempotency, re-enable."""

from __future__ import annotations

from datetime import UTC, datetime

from services.monitor.counting import (
    COUNTED_EVENTS,
    Outcome,
    apply_config,
    apply_disabled,
    apply_record,
    apply_reset,
)
from services.monitor.state import ConfigErrorState, Phase
from shared.contracts import (
    Destination,
    EventType,
    IntegrationEvent,
    IntegrationRun,
    RunStatus,
)
from tests.support.builders import config

NOW = datetime.now(UTC)


def _err(i: int, kind: EventType = EventType.PERFORM_ERROR) -> IntegrationEvent:
    return IntegrationEvent(
        id=f"e{i}",
        event_type=kind,
        message=f"boom {i}",
        integration_config_id="cfg-1",
        integration_run_id=f"run-{i}",
        entity_id=f"bill-{i}",
        dt_created=NOW,
    )


def _run(i: int, status: RunStatus = RunStatus.COMPLETE) -> IntegrationRun:
    return IntegrationRun(
        id=f"run-ok-{i}",
        entity_id="bill",
        integration_config_id="cfg-1",
        destination=Destination.STRIPE_TEST,
        status=status,
        dt_started=NOW,
    )


def _apply(
    state: ConfigErrorState, rec: IntegrationEvent | IntegrationRun, cfg: object = None
) -> Outcome:
    return apply_record(state, rec, cfg, threshold=3, keep=50)  # type: ignore[arg-type]


def test_threshold_disables_once_and_keeps_last_error() -> None:
    s = ConfigErrorState(integration_config_id="cfg-1")
    cfg = config("cfg-1", version=4)
    assert [_apply(s, _err(i), cfg) for i in range(2)] == [Outcome.CHANGED] * 2
    assert _apply(s, _err(2, EventType.AUTHENTICATION_ERROR), cfg) is Outcome.DISABLE
    assert s.phase is Phase.DISABLE_PENDING and s.disabled_config_version == 4
    assert s.last_error == "boom 2" and s.last_run_id == "run-2"
    assert _apply(s, _err(3), cfg) is Outcome.CHANGED  # counted, but no second disable


def test_complete_run_resets_and_other_records_do_not_count() -> None:
    s = ConfigErrorState(integration_config_id="cfg-1")
    _apply(s, _err(1))
    _apply(s, _err(2))
    assert _apply(s, _run(1, RunStatus.ERROR)) is Outcome.UNCHANGED
    disabled_event = _err(9, EventType.DISABLED)
    assert _apply(s, disabled_event) is Outcome.UNCHANGED
    assert s.successive_errors == 2
    assert _apply(s, _run(1)) is Outcome.CHANGED
    assert s.successive_errors == 0


def test_redelivered_records_are_not_counted_twice() -> None:
    s = ConfigErrorState(integration_config_id="cfg-1")
    batch: list[IntegrationEvent | IntegrationRun] = [_err(1), _run(1), _err(2)]
    for rec in batch + batch:  # a batch redelivered after a crash before the commit
        _apply(s, rec)
    assert s.successive_errors == 1


def test_already_disabled_configuration_is_not_disabled_again() -> None:
    s = ConfigErrorState(integration_config_id="cfg-1")
    cfg = config("cfg-1", enabled=False)
    for i in range(5):
        assert _apply(s, _err(i), cfg) is not Outcome.DISABLE
    assert s.phase is Phase.COUNTING and s.successive_errors == 5


def test_re_enable_resets_but_history_replay_does_not() -> None:
    s = ConfigErrorState(integration_config_id="cfg-1")
    v1, v2, v3 = (
        config("cfg-1", version=1),
        config("cfg-1", version=2, enabled=False),
        config("cfg-1", version=3),
    )
    for i in range(3):
        _apply(s, _err(i), v1)
    assert s.phase is Phase.DISABLE_PENDING
    assert not apply_config(s, v1, None)  # the table replaying what we disabled
    assert not apply_config(s, v2, v1)  # the control plane's disabled version
    assert apply_config(s, v3, v2)
    assert s.successive_errors == 0 and s.phase is Phase.COUNTING
    _apply(s, _err(7), v3)
    assert not apply_config(s, v3, v2)  # seen again after a restart: no second reset
    assert s.successive_errors == 1


def test_manual_disable_then_enable_resets() -> None:
    s = ConfigErrorState(integration_config_id="cfg-1")
    _apply(s, _err(1))
    assert apply_config(s, config("cfg-1", version=6), config("cfg-1", version=5, enabled=False))
    assert s.successive_errors == 0


def test_only_the_provider_facing_allow_list_counts_and_nothing_else_resets() -> None:
    """Internal errors (our own bugs) get their own event type from the sink: any type
    outside the allow-list, known or not, neither counts nor resets the count."""
    s = ConfigErrorState(integration_config_id="cfg-1")
    for i in range(2):
        _apply(s, _err(i))
    outside = [t for t in EventType if t not in COUNTED_EVENTS]
    internal = _err(5).model_copy(update={"event_type": "integration.internal.error"})
    for rec in [*(_err(10 + n, t) for n, t in enumerate(outside)), internal]:
        before = s.model_copy(deep=True)
        assert _apply(s, rec) is Outcome.UNCHANGED
        assert s == before
    assert s.successive_errors == 2
    assert COUNTED_EVENTS == {
        EventType.VALIDATION_ERROR,
        EventType.MISSING_ACCOUNT_MAPPING,
        EventType.AUTHENTICATION_ERROR,
        EventType.PERFORM_ERROR,
    }


def test_the_disable_decision_has_a_stable_id_and_its_end_is_applied_once() -> None:
    cfg = config("cfg-1", version=4)
    decisions = []
    for _ in range(2):  # the same input re-applied from scratch, as after a crash
        s = ConfigErrorState(integration_config_id="cfg-1")
        for i in range(3):
            _apply(s, _err(i), cfg)
        decisions.append(s.disable_event_id)
    assert decisions[0] == decisions[1] and decisions[0]
    assert not apply_disabled(s, "evt_disabled_other")  # another decision's end
    assert apply_disabled(s, decisions[0]) and s.phase is Phase.DISABLED
    assert not apply_disabled(s, decisions[0])
    assert apply_reset(s, 5) and not apply_reset(s, 5) and s.phase is Phase.COUNTING


def test_first_error_time_marks_the_start_of_the_run_of_errors() -> None:
    s = ConfigErrorState(integration_config_id="cfg-1")
    first = _err(1).model_copy(update={"dt_created": datetime(2026, 1, 31, 8, tzinfo=UTC)})
    _apply(s, first)
    _apply(s, _err(2))
    assert s.first_error_at == datetime(2026, 1, 31, 8, tzinfo=UTC)
    _apply(s, _run(1))
    _apply(s, _err(3))
    assert s.first_error_at == NOW
