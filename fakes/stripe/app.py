"""The aiohttp application: the ``/v1`` routes and the ``/_fake`` control endpoints."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import balance, customers, invoices, items, transitions
from .context import Endpoint
from .core import Core
from .errors import StripeError
from .state import PLATFORM

ENDPOINTS: list[Endpoint] = [
    *customers.ENDPOINTS,
    *invoices.ENDPOINTS,
    *transitions.ENDPOINTS,
    *items.ENDPOINTS,
    *balance.ENDPOINTS,
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _api_handler(core: Core, endpoint: Endpoint) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await core.handle(request, endpoint)

    return handler


async def _unrecognized(request: web.Request) -> web.StreamResponse:
    error = StripeError(
        404,
        f"Unrecognized request URL ({request.method}: {request.path}). Please see "
        "https://stripe.com/docs or we can help at https://support.stripe.com/.",
    )
    return web.json_response(error.body(), status=404)


async def _json_body(request: web.Request) -> Any:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc


def state_json(core: Core) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {"test": {}, "live": {}}
    for ns in core.store.namespaces.values():
        out["live" if ns.livemode else "test"][ns.account or PLATFORM] = core.namespace_json(ns)
    return out


def control_routes(
    core: Core, seed: Callable[[dict[str, Any]], dict[str, Any]], advance: Callable[[float], float]
) -> list[web.RouteDef]:
    async def get_state(request: web.Request) -> web.StreamResponse:
        return web.json_response(state_json(core))

    async def reset(request: web.Request) -> web.StreamResponse:
        core.reset()
        return web.json_response({"reset": True})

    async def get_config(request: web.Request) -> web.StreamResponse:
        return web.json_response(core.config.to_json())

    async def post_config(request: web.Request) -> web.StreamResponse:
        patch = await _json_body(request)
        try:
            core.configure(patch)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(core.config.to_json())

    async def post_customers(request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        specs = body.get("customers", [body]) if isinstance(body, dict) else body
        try:
            created = [seed(spec) for spec in specs]
        except (KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad customer spec: {exc!r}"}, status=400)
        return web.json_response({"customers": created})

    async def get_stats(request: web.Request) -> web.StreamResponse:
        return web.json_response(core.stats.to_json())

    async def get_webhooks(request: web.Request) -> web.StreamResponse:
        return web.json_response({"deliveries": core.webhooks.deliveries})

    async def post_clock(request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        return web.json_response({"now": advance(float(body.get("advance_seconds", 0)))})

    return [
        web.get("/_fake/state", get_state),
        web.post("/_fake/reset", reset),
        web.get("/_fake/config", get_config),
        web.post("/_fake/config", post_config),
        web.post("/_fake/customers", post_customers),
        web.get("/_fake/stats", get_stats),
        web.get("/_fake/webhooks", get_webhooks),
        web.post("/_fake/clock", post_clock),
    ]


def build_app(core: Core, control: list[web.RouteDef]) -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, _api_handler(core, endpoint))
    app.router.add_routes(control)
    app.router.add_route("*", "/v1/{tail:.*}", _unrecognized)
    return app
