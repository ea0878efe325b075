"""The Store: one engine, tables created on start, one method per use case."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from shared.contracts import (
    ExternalStatusUpdate,
    IntegrationEvent,
    IntegrationRun,
    ResultRecord,
)
from shared.store import audit, events, runs, statuses
from shared.store.engine import make_engine, safe_url
from shared.store.models import (
    ConfigChange,
    EventQuery,
    Page,
    RunQuery,
    StoredEvent,
    StoredRun,
)
from shared.store.tables import metadata


@dataclass(frozen=True)
class IngestCounts:
    runs: int = 0
    events: int = 0
    statuses: int = 0


class Store:
    def __init__(self, url: str) -> None:
        self.url = safe_url(url)  # never log the password
        self.engine = make_engine(url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def start(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def ingest(self, records: Sequence[ResultRecord]) -> IngestCounts:
        """Write one batch of results in one transaction (all or nothing, so the caller may
        commit its offsets afterwards). Duplicates collapse: upserts keyed by id."""
        run_records = [r for r in records if isinstance(r, IntegrationRun)]
        event_records = [r for r in records if isinstance(r, IntegrationEvent)]
        status_records = [r for r in records if isinstance(r, ExternalStatusUpdate)]
        async with self.engine.begin() as conn:
            await runs.upsert_runs(conn, run_records)
            await events.insert_events(conn, event_records)
            await statuses.upsert_statuses(conn, status_records)
        return IngestCounts(len(run_records), len(event_records), len(status_records))

    # ---- runs

    async def list_runs(self, query: RunQuery) -> Page[StoredRun]:
        async with self.engine.connect() as conn:
            return await runs.list_runs(conn, query)

    async def get_run(self, run_id: str) -> StoredRun | None:
        async with self.engine.connect() as conn:
            return await runs.get_run(conn, run_id)

    async def failed_runs_since(self, config_id: str, since: datetime) -> list[IntegrationRun]:
        async with self.engine.connect() as conn:
            return await runs.failed_runs_since(conn, config_id, since)

    # ---- events

    async def list_events(self, query: EventQuery) -> Page[StoredEvent]:
        async with self.engine.connect() as conn:
            return await events.list_events(conn, query)

    async def get_event(self, event_id: str) -> StoredEvent | None:
        async with self.engine.connect() as conn:
            return await events.get_event(conn, event_id)

    async def mark_event_actioned(self, event_id: str) -> StoredEvent | None:
        async with self.engine.begin() as conn:
            return await events.mark_actioned(conn, event_id)

    # ---- configuration audit

    async def record_config_change(
        self, config_id: str, version: int, action: str, actor: str, reason: str | None = None
    ) -> None:
        async with self.engine.begin() as conn:
            await audit.record_change(conn, config_id, version, action, actor, reason)

    async def list_config_changes(self, config_id: str, limit: int = 100) -> list[ConfigChange]:
        async with self.engine.connect() as conn:
            return await audit.list_changes(conn, config_id, limit)
