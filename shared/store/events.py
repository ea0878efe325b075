"""Integration events: what an operator must act on, with an actioned flag."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts import IntegrationEvent
from shared.store.models import EventQuery, Page, StoredEvent
from shared.store.tables import events
from shared.store.upsert import insert_for

_FIELDS = [
    "id",
    "event_type",
    "message",
    "integration_config_id",
    "integration_run_id",
    "entity_id",
    "destination",
    "dt_created",
    "actioned",
]


async def insert_events(conn: AsyncConnection, records: Sequence[IntegrationEvent]) -> None:
    """Insert new events; a redelivered event is ignored so its actioned flag survives."""
    for event in {e.id: e for e in records}.values():
        values: dict[str, Any] = {name: getattr(event, name) for name in _FIELDS}
        values["event_type"] = str(event.event_type)
        values["destination"] = str(event.destination) if event.destination else None
        stmt = insert_for(conn, events).values(**values)
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=[events.c.id]))


def _stored(row: Row[Any]) -> StoredEvent:
    data = {name: getattr(row, name) for name in _FIELDS}
    event = IntegrationEvent.model_validate({k: v for k, v in data.items() if v is not None})
    return StoredEvent(event, row.dt_actioned)


async def list_events(conn: AsyncConnection, q: EventQuery) -> Page[StoredEvent]:
    where: list[Any] = []
    if q.event_type:
        where.append(events.c.event_type == q.event_type)
    if q.integration_config_id:
        where.append(events.c.integration_config_id == q.integration_config_id)
    if q.actioned is not None:
        where.append(events.c.actioned.is_(q.actioned))
    if q.after:
        at, event_id = q.after
        where.append(
            or_(events.c.dt_created < at, and_(events.c.dt_created == at, events.c.id < event_id))
        )
    stmt = (
        select(events)
        .where(*where)
        .order_by(events.c.dt_created.desc(), events.c.id.desc())
        .limit(q.limit + 1)
    )
    rows = (await conn.execute(stmt)).all()
    items = [_stored(r) for r in rows[: q.limit]]
    last = items[-1].event if len(rows) > q.limit else None
    return Page(items, (last.dt_created, last.id) if last else None)


async def get_event(conn: AsyncConnection, event_id: str) -> StoredEvent | None:
    row = (await conn.execute(select(events).where(events.c.id == event_id))).first()
    return _stored(row) if row else None


async def mark_actioned(conn: AsyncConnection, event_id: str) -> StoredEvent | None:
    """Idempotent: the first time sets dt_actioned, later calls keep it."""
    await conn.execute(
        update(events)
        .where(events.c.id == event_id, events.c.actioned.is_(False))
        .values(actioned=True, dt_actioned=datetime.now(UTC))
    )
    return await get_event(conn, event_id)
