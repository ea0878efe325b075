"""Configuration state changes: who enabled, disabled or re-connected what, and why."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.store.models import ConfigChange
from shared.store.tables import config_changes


async def record_change(
    conn: AsyncConnection,
    config_id: str,
    version: int,
    action: str,
    actor: str,
    reason: str | None,
) -> None:
    await conn.execute(
        insert(config_changes).values(
            integration_config_id=config_id,
            version=version,
            action=action,
            actor=actor,
            reason=reason,
            dt_changed=datetime.now(UTC),
        )
    )


async def list_changes(
    conn: AsyncConnection, config_id: str, limit: int = 100
) -> list[ConfigChange]:
    stmt = (
        select(config_changes)
        .where(config_changes.c.integration_config_id == config_id)
        .order_by(config_changes.c.seq.desc())
        .limit(limit)
    )
    return [
        ConfigChange(
            integration_config_id=r.integration_config_id,
            version=r.version,
            action=r.action,
            actor=r.actor,
            reason=r.reason,
            dt_changed=r.dt_changed,
        )
        for r in (await conn.execute(stmt)).all()
    ]
