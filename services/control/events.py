"""Integration events: what an operator must act on; marking one actioned."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.control.context import CTX
from services.control.errors import not_found
from services.control.params import boolean, decode_cursor, encode_cursor, one_of, page_size
from shared.contracts import EventType
from shared.store import EventQuery, StoredEvent


def event_view(stored: StoredEvent) -> dict[str, Any]:
    body = stored.event.to_wire()
    body.pop("recordType", None)
    body["actioned"] = stored.event.actioned
    body["dtActioned"] = stored.dt_actioned.isoformat() if stored.dt_actioned else None
    return body


async def list_(request: web.Request) -> web.Response:
    event_type = one_of(request, "eventType", (e.value for e in EventType))
    query = EventQuery(
        event_type=event_type,
        integration_config_id=request.query.get("integrationConfigId") or None,
        actioned=boolean(request, "actioned"),
        limit=page_size(request),
        after=decode_cursor(request),
    )
    page = await request.app[CTX].store.list_events(query)
    return web.json_response(
        {"data": [event_view(e) for e in page.items], "nextToken": encode_cursor(page.next_after)}
    )


async def get(request: web.Request) -> web.Response:
    event = await request.app[CTX].store.get_event(request.match_info["id"])
    if event is None:
        raise not_found("integration event", request.match_info["id"])
    return web.json_response(event_view(event))


async def actioned(request: web.Request) -> web.Response:
    event = await request.app[CTX].store.mark_event_actioned(request.match_info["id"])
    if event is None:
        raise not_found("integration event", request.match_info["id"])
    return web.json_response(event_view(event))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/integrationevents", list_),
        web.get("/integrationevents/{id}", get),
        web.post("/integrationevents/{id}/actioned", actioned),
    ]
