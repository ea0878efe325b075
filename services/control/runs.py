"""Integration run history (ingested from `integration-results`), newest first, with the
destination invoice's status from webhooks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.control.context import CTX
from services.control.errors import not_found, validation_error
from services.control.params import decode_cursor, encode_cursor, one_of, page_size, query_time
from shared.contracts import Destination, RunStatus
from shared.store import RunQuery, StoredRun


def run_view(stored: StoredRun) -> dict[str, Any]:
    body = stored.run.to_wire()
    body.pop("recordType", None)
    status = stored.external_status
    body["externalStatus"] = (
        {
            "status": status.status,
            "externalId": status.external_id,
            "providerEventId": status.provider_event_id,
            "providerEventType": status.provider_event_type,
            "dtReceived": status.dt_received.isoformat(),
        }
        if status
        else None
    )
    return body


def _statuses(request: web.Request) -> list[RunStatus]:
    raw = request.query.getall("status", [])
    names = [part for value in raw for part in value.split(",") if part]
    try:
        return [RunStatus(n) for n in names]
    except ValueError:
        raise validation_error(
            "status must be one of " + ", ".join(s.value for s in RunStatus),
            [{"field": "status", "message": ",".join(names)}],
        ) from None


def _query(request: web.Request, limit: int | None = None) -> RunQuery:
    q = request.query
    destination = one_of(request, "destination", (d.value for d in Destination))
    return RunQuery(
        entity_id=q.get("entityId") or None,
        integration_config_id=q.get("integrationConfigId") or None,
        destination=destination,
        statuses=_statuses(request),
        dt_from=query_time(request, "from"),
        dt_to=query_time(request, "to"),
        limit=limit or page_size(request),
        after=None if limit else decode_cursor(request),
    )


async def list_(request: web.Request) -> web.Response:
    page = await request.app[CTX].store.list_runs(_query(request))
    return web.json_response(
        {"data": [run_view(r) for r in page.items], "nextToken": encode_cursor(page.next_after)}
    )


async def latest(request: web.Request) -> web.Response:
    if not request.query.get("entityId"):
        raise validation_error(
            "entityId (the bill id) is required", [{"field": "entityId", "message": "required"}]
        )
    page = await request.app[CTX].store.list_runs(_query(request, limit=1))
    if not page.items:
        raise not_found("integration run for bill", request.query["entityId"])
    return web.json_response(run_view(page.items[0]))


async def get(request: web.Request) -> web.Response:
    run = await request.app[CTX].store.get_run(request.match_info["id"])
    if run is None:
        raise not_found("integration run", request.match_info["id"])
    return web.json_response(run_view(run))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/integrationruns", list_),
        web.get("/integrationruns/latest", latest),  # before {id}: routes match in order
        web.get("/integrationruns/{id}", get),
    ]
