"""Resend bills: one run's bill, or every failed bill of a configuration since a time.

The control plane only publishes replay requests (read back from each run's recorded
input offset); the sinks' invoice map turns a resend into an update, never a duplicate."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.control.context import CTX, ControlContext
from services.control.errors import ApiError, conflict, not_found, validation_error
from services.control.params import timestamp
from shared.contracts import IntegrationRun
from shared.logging import get_logger
from shared.replay import ReplaySourceError, resend_from_source
from shared.store import RunQuery

log = get_logger(__name__)


def _require_enabled(ctx: ControlContext, config_id: str) -> None:
    config = ctx.configs.get(config_id)
    if config is None:
        raise not_found("integration configuration", config_id)
    if not config.enabled:
        raise conflict(
            f"integration configuration {config_id!r} is disabled: the router would drop the "
            "resend. Enable it first (POST /integrationconfigs/{id}/enable)"
        )


async def _resend(ctx: ControlContext, run: IntegrationRun) -> dict[str, Any]:
    if not run.source:
        raise conflict(f"integration run {run.id!r} has no recorded input offset to resend from")
    try:
        request = await resend_from_source(
            ctx.settings, ctx.producer, run.source, [run.integration_config_id]
        )
    except ReplaySourceError as exc:
        raise conflict(f"cannot resend run {run.id!r}: {exc}") from None
    log.info(
        "run_resent",
        run_id=run.id,
        bill_id=run.entity_id,
        config_id=run.integration_config_id,
        replay_id=request.replay_id,
    )
    return {
        "runId": run.id,
        "entityId": run.entity_id,
        "integrationConfigId": run.integration_config_id,
        "replayId": request.replay_id,
        "source": run.source,
    }


async def resend_run(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    stored = await ctx.store.get_run(request.match_info["id"])
    if stored is None:
        raise not_found("integration run", request.match_info["id"])
    _require_enabled(ctx, stored.run.integration_config_id)
    return web.json_response(await _resend(ctx, stored.run), status=202)


async def resend_failed(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    config_id = request.match_info["id"]
    raw = request.query.get("since")
    if not raw:
        raise validation_error(
            "since is required (ISO 8601), e.g. ?since=2026-01-31T00:00:00Z",
            [{"field": "since", "message": "required"}],
        )
    since = timestamp(raw, "since")
    _require_enabled(ctx, config_id)
    resent: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    seen: set[str] = set()
    for run in await ctx.store.failed_runs_since(config_id, since):  # newest first
        if run.entity_id in seen:
            continue  # one resend per bill
        seen.add(run.entity_id)
        latest = await ctx.store.list_runs(
            RunQuery(entity_id=run.entity_id, integration_config_id=config_id, limit=1)
        )
        newest = latest.items[0].run if latest.items else run
        if not newest.status.is_error and newest.id != run.id:
            skipped.append(_skip(run, f"a later run {newest.id} is {newest.status.value}"))
            continue
        try:
            resent.append(await _resend(ctx, run))
        except ApiError as exc:  # this bill cannot be resent; report it and go on
            skipped.append(_skip(run, exc.message))
    body = {
        "integrationConfigId": config_id,
        "since": since.isoformat(),
        "resent": resent,
        "skipped": skipped,
    }
    return web.json_response(body, status=202)


def _skip(run: IntegrationRun, reason: str) -> dict[str, Any]:
    return {"runId": run.id, "entityId": run.entity_id, "reason": reason}


def routes() -> list[web.RouteDef]:
    return [
        web.post("/integrationruns/{id}/resend", resend_run),
        web.post("/integrationconfigs/{id}/resend-failed", resend_failed),
    ]
