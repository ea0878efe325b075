"""Integration runs: the latest state of each run, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts import IntegrationRun, RunStatus
from shared.store.models import ExternalStatusRow, Page, RunQuery, StoredRun
from shared.store.tables import external_statuses, runs
from shared.store.upsert import insert_for

_COLUMNS = [c.name for c in runs.columns if c.name not in {"rank", "updated_at"}]


def rank(run: IntegrationRun) -> int:
    """The latest state of a run wins, whatever order its records arrive in:
    - a final record outranks every non-final one (a run stays final until a later final
      record replaces it: a redelivery after a crash counts its attempts from 1 again);
    - between final records the later completion wins (the same instant: the later
      attempt);
    - between non-final records the later attempt wins (equal ranks: the later record)."""
    if not RunStatus(run.status).is_final:
        return run.attempt
    completed = run.dt_completed or run.dt_started
    millis = int(completed.timestamp() * 1000)
    return _FINAL + millis * _ATTEMPTS + min(run.attempt, _ATTEMPTS - 1)


_ATTEMPTS = 1000  # attempt numbers kept in a final rank
_FINAL = 10**9  # above any attempt number a non-final record carries


def _values(run: IntegrationRun) -> dict[str, Any]:
    values = {name: getattr(run, name) for name in _COLUMNS}
    values["destination"] = str(run.destination)
    values["status"] = str(run.status)
    values["rank"] = rank(run)
    values["updated_at"] = datetime.now(UTC)
    return values


def collapse(records: Sequence[IntegrationRun]) -> list[IntegrationRun]:
    """One record per run id (the highest rank, the last among equals): a multi-row
    upsert may not touch the same row twice."""
    best: dict[str, IntegrationRun] = {}
    for run in records:
        current = best.get(run.id)
        if current is None or rank(run) >= rank(current):
            best[run.id] = run
    return list(best.values())


async def upsert_runs(conn: AsyncConnection, records: Sequence[IntegrationRun]) -> None:
    for run in collapse(records):
        values = _values(run)
        stmt = insert_for(conn, runs).values(**values)
        update = {k: stmt.excluded[k] for k in values if k != "id"}
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[runs.c.id], set_=update, where=runs.c.rank <= stmt.excluded.rank
            )
        )


def _run(row: Row[Any]) -> IntegrationRun:
    data = {name: getattr(row, name) for name in _COLUMNS}
    return IntegrationRun.model_validate({k: v for k, v in data.items() if v is not None})


def _filters(q: RunQuery) -> list[Any]:
    where: list[Any] = []
    if q.entity_id:
        where.append(runs.c.entity_id == q.entity_id)
    if q.integration_config_id:
        where.append(runs.c.integration_config_id == q.integration_config_id)
    if q.destination:
        where.append(runs.c.destination == q.destination)
    if q.statuses:
        where.append(runs.c.status.in_([s.value for s in q.statuses]))
    if q.dt_from:
        where.append(runs.c.dt_started >= q.dt_from)
    if q.dt_to:
        where.append(runs.c.dt_started < q.dt_to)
    if q.after:
        at, run_id = q.after
        where.append(or_(runs.c.dt_started < at, and_(runs.c.dt_started == at, runs.c.id < run_id)))
    return where


async def list_runs(conn: AsyncConnection, q: RunQuery) -> Page[StoredRun]:
    stmt = (
        select(runs)
        .where(*_filters(q))
        .order_by(runs.c.dt_started.desc(), runs.c.id.desc())
        .limit(q.limit + 1)
    )
    rows = (await conn.execute(stmt)).all()
    found = [_run(r) for r in rows[: q.limit]]
    items = await with_statuses(conn, found)
    last = found[-1] if len(rows) > q.limit else None
    return Page(items, (last.dt_started, last.id) if last else None)


async def get_run(conn: AsyncConnection, run_id: str) -> StoredRun | None:
    row = (await conn.execute(select(runs).where(runs.c.id == run_id))).first()
    if row is None:
        return None
    return (await with_statuses(conn, [_run(row)]))[0]


async def failed_runs_since(
    conn: AsyncConnection, config_id: str, since: datetime
) -> list[IntegrationRun]:
    """Failed runs of a configuration since a time, newest first."""
    errors = [s.value for s in RunStatus if s.is_error]
    stmt = (
        select(runs)
        .where(
            runs.c.integration_config_id == config_id,
            runs.c.dt_started >= since,
            runs.c.status.in_(errors),
        )
        .order_by(runs.c.dt_started.desc(), runs.c.id.desc())
    )
    return [_run(r) for r in (await conn.execute(stmt)).all()]


async def with_statuses(conn: AsyncConnection, found: list[IntegrationRun]) -> list[StoredRun]:
    """Attach the latest external invoice status to each run (by external id, else by bill
    and configuration)."""
    if not found:
        return []
    external_ids = {r.external_id for r in found if r.external_id}
    entity_ids = {r.entity_id for r in found}
    stmt = select(external_statuses).where(
        or_(
            external_statuses.c.external_id.in_(external_ids),
            external_statuses.c.entity_id.in_(entity_ids),
        )
    )
    by_external: dict[str, ExternalStatusRow] = {}
    by_pair: dict[tuple[str, str], ExternalStatusRow] = {}
    for row in (await conn.execute(stmt)).all():
        status = ExternalStatusRow(
            external_id=row.external_id,
            status=row.status,
            provider_event_id=row.provider_event_id,
            provider_event_type=row.provider_event_type,
            dt_received=row.dt_received,
            entity_id=row.entity_id,
            integration_config_id=row.integration_config_id,
            destination=row.destination,
        )
        _keep_newest(by_external, row.external_id, status)
        if row.entity_id and row.integration_config_id:
            _keep_newest(by_pair, (row.entity_id, row.integration_config_id), status)
    out: list[StoredRun] = []
    for run in found:
        status_row = by_external.get(run.external_id or "") or by_pair.get(
            (run.entity_id, run.integration_config_id)
        )
        out.append(StoredRun(run, status_row))
    return out


def _keep_newest(index: dict[Any, ExternalStatusRow], key: Any, row: ExternalStatusRow) -> None:
    current = index.get(key)
    if current is None or row.dt_received > current.dt_received:
        index[key] = row
