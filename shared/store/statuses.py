"""External invoice statuses from verified provider webhooks (newest received wins)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts import ExternalStatusUpdate
from shared.store.tables import external_statuses, runs
from shared.store.upsert import insert_for


def status_key(entity_id: str | None, config_id: str | None, external_id: str) -> str:
    if entity_id and config_id:
        return f"bill:{entity_id}\x1fcfg:{config_id}"
    return f"ext:{external_id}"


async def _resolve(
    conn: AsyncConnection, update: ExternalStatusUpdate
) -> tuple[str | None, str | None]:
    """Fill a missing bill or configuration id from the run that created the invoice."""
    if update.entity_id and update.integration_config_id:
        return update.entity_id, update.integration_config_id
    stmt = (
        select(runs.c.entity_id, runs.c.integration_config_id)
        .where(runs.c.external_id == update.external_id)
        .order_by(runs.c.dt_started.desc())
        .limit(1)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return update.entity_id, update.integration_config_id
    return update.entity_id or row.entity_id, update.integration_config_id or (
        row.integration_config_id
    )


async def upsert_statuses(conn: AsyncConnection, records: Sequence[ExternalStatusUpdate]) -> None:
    for update in sorted(records, key=lambda u: u.dt_received):
        entity_id, config_id = await _resolve(conn, update)
        values = {
            "key": status_key(entity_id, config_id, update.external_id),
            "entity_id": entity_id,
            "integration_config_id": config_id,
            "external_id": update.external_id,
            "destination": str(update.destination) if update.destination else None,
            "status": str(update.external_status),
            "provider_event_id": update.id,
            "provider_event_type": update.provider_event_type,
            "dt_received": update.dt_received,
        }
        stmt = insert_for(conn, external_statuses).values(**values)
        # Webhooks arrive out of order: an older event never overwrites a newer status.
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[external_statuses.c.key],
                set_={k: stmt.excluded[k] for k in values if k != "key"},
                where=external_statuses.c.dt_received <= stmt.excluded.dt_received,
            )
        )
