"""Pure counting rules: which results count, what resets, when to disable."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import Enum

from services.monitor.state import ConfigErrorState, Phase
from shared.contracts import (
    EventType,
    IntegrationConfig,
    IntegrationEvent,
    IntegrationRun,
    RunStatus,
)

COUNTED_EVENTS = frozenset(
    {
        EventType.VALIDATION_ERROR,
        EventType.MISSING_ACCOUNT_MAPPING,
        EventType.AUTHENTICATION_ERROR,
        EventType.PERFORM_ERROR,
    }
)


class Outcome(Enum):
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    DISABLE = "disable"  # the state just moved to DISABLE_PENDING


def record_key(record: IntegrationEvent | IntegrationRun) -> str | None:
    """The id that makes a record idempotent; None for records that never count."""
    if isinstance(record, IntegrationEvent):
        return f"e:{record.id}" if record.event_type in COUNTED_EVENTS else None
    return f"r:{record.id}:complete" if record.status is RunStatus.COMPLETE else None


def _remember(state: ConfigErrorState, key: str, keep: int) -> None:
    state.recent_ids.append(key)
    if len(state.recent_ids) > keep:
        del state.recent_ids[: len(state.recent_ids) - keep]


def apply_record(
    state: ConfigErrorState,
    record: IntegrationEvent | IntegrationRun,
    config: IntegrationConfig | None,
    threshold: int,
    keep: int,
) -> Outcome:
    key = record_key(record)
    if key is None or key in state.recent_ids:
        return Outcome.UNCHANGED
    _remember(state, key, keep)
    state.updated_at = datetime.now(UTC)
    if isinstance(record, IntegrationRun):
        # A success after the decision to disable does not undo it: only re-enabling does.
        if state.phase is Phase.COUNTING:
            state.successive_errors = 0
        return Outcome.CHANGED
    state.successive_errors += 1
    if state.successive_errors == 1 or state.first_error_at is None:
        state.first_error_at = record.dt_created
    state.last_error = record.message
    state.last_event_type = record.event_type.value
    state.last_run_id = record.integration_run_id
    state.last_bill_id = record.entity_id
    state.last_error_at = record.dt_created
    if state.phase is not Phase.COUNTING or state.successive_errors < threshold:
        return Outcome.CHANGED
    if config is not None and not config.enabled:
        return Outcome.CHANGED  # already disabled by someone else; re-enabling resets
    state.phase = Phase.DISABLE_PENDING
    state.disabled_config_version = config.version if config is not None else 0
    # Derived from what triggered it, so a decision re-made after a crash (the input is
    # redelivered) publishes the same event id, which the control plane de-duplicates.
    digest = hashlib.sha256(f"{state.integration_config_id}\x1f{key}".encode()).hexdigest()
    state.disable_event_id = f"evt_disabled_{digest[:24]}"
    return Outcome.DISABLE


def should_reset(
    state: ConfigErrorState, config: IntegrationConfig, previous: IntegrationConfig | None
) -> bool:
    """A newer enabled version after a disable (ours or an operator's) resets the count."""
    if not config.enabled or config.version <= state.reset_config_version:
        return False
    re_enabled = previous is not None and not previous.enabled and previous.version < config.version
    after_our_disable = (
        state.phase is not Phase.COUNTING and config.version > state.disabled_config_version
    )
    return re_enabled or after_our_disable


def apply_reset(state: ConfigErrorState, version: int) -> bool:
    """Reset to version `version` (idempotent: an older or repeated reset changes nothing)."""
    if version <= state.reset_config_version:
        return False
    state.successive_errors = 0
    state.phase = Phase.COUNTING
    state.reset_config_version = version
    state.disable_event_id = None
    state.disabled_at = None
    state.updated_at = datetime.now(UTC)
    return True


def apply_config(
    state: ConfigErrorState, config: IntegrationConfig, previous: IntegrationConfig | None
) -> bool:
    """Reset on a newer enabled version after a disable; True when the state changed."""
    return should_reset(state, config, previous) and apply_reset(state, config.version)


def apply_disabled(state: ConfigErrorState, disable_event_id: str) -> bool:
    """The actions of the decision `disable_event_id` are done (unless it was reset since)."""
    if state.phase is not Phase.DISABLE_PENDING or state.disable_event_id != disable_event_id:
        return False
    state.phase, state.disabled_at = Phase.DISABLED, datetime.now(UTC)
    state.updated_at = state.disabled_at
    return True
