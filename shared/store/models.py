"""What the store returns: contract models plus what only the store knows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from shared.contracts import IntegrationEvent, IntegrationRun, RunStatus

T = TypeVar("T")
# Keyset cursor: (timestamp, id) of the last item of the previous page (newest first).
Cursor = tuple[datetime, str]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_after: Cursor | None


@dataclass(frozen=True)
class ExternalStatusRow:
    external_id: str
    status: str
    provider_event_id: str
    provider_event_type: str
    dt_received: datetime
    entity_id: str | None = None
    integration_config_id: str | None = None
    destination: str | None = None


@dataclass(frozen=True)
class StoredRun:
    run: IntegrationRun
    external_status: ExternalStatusRow | None = None


@dataclass(frozen=True)
class StoredEvent:
    event: IntegrationEvent
    dt_actioned: datetime | None = None


@dataclass(frozen=True)
class ConfigChange:
    integration_config_id: str
    version: int
    action: str
    actor: str
    reason: str | None
    dt_changed: datetime


@dataclass(frozen=True)
class RunQuery:
    entity_id: str | None = None
    integration_config_id: str | None = None
    destination: str | None = None
    statuses: list[RunStatus] = field(default_factory=list)
    dt_from: datetime | None = None
    dt_to: datetime | None = None
    limit: int = 50
    after: Cursor | None = None


@dataclass(frozen=True)
class EventQuery:
    event_type: str | None = None
    integration_config_id: str | None = None
    actioned: bool | None = None
    limit: int = 50
    after: Cursor | None = None
