"""Per-configuration error state, kept on the compacted `monitor-state` topic."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import Field

from shared.contracts.base import WireModel


class Phase(StrEnum):
    COUNTING = "COUNTING"
    DISABLE_PENDING = "DISABLE_PENDING"  # threshold reached; the disable is not yet done
    DISABLED = "DISABLED"  # disabled by the monitor; waiting for a re-enabled version


class ConfigErrorState(WireModel):
    integration_config_id: str
    successive_errors: int = 0
    phase: Phase = Phase.COUNTING
    # Ids of the records already applied (bounded): a record published twice counts once.
    recent_ids: list[str] = Field(default_factory=list)
    # Highest input offset applied, per "topic/partition": a redelivered record (after a
    # crash, any number of them) is recognised by its position, not by a bounded window.
    applied_offsets: dict[str, int] = Field(default_factory=dict)
    last_error: str | None = None
    last_event_type: str | None = None
    last_run_id: str | None = None
    last_bill_id: str | None = None
    last_error_at: datetime | None = None
    first_error_at: datetime | None = None  # of the current run of successive errors
    # A configuration version at or below this one never resets the count again
    # (the configs table replays its history on every start).
    reset_config_version: int = 0
    disabled_config_version: int = 0
    disable_event_id: str | None = None
    disabled_at: datetime | None = None
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
