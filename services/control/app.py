"""create_app: the aiohttp application over a started ControlContext."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

import shared.buildinfo  # noqa: F401  (billsync_build_info on /metrics)
from services.control import (
    configs_api,
    console,
    credentials_api,
    events,
    mappings,
    middleware,
    oauth,
    openapi,
    resend,
    runs,
)
from services.control.auth import TokenAuth
from services.control.context import CTX, ControlContext
from shared.logging import get_logger

log = get_logger(__name__)


async def _health(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    try:
        database = await ctx.store.ping()
    except Exception:  # noqa: BLE001 - any failure means: not healthy
        database = False
    tables = {
        "configs": ctx.configs.table.ready.is_set(),
        "credentials": ctx.credentials.table.ready.is_set(),
        "mappings": ctx.mappings.table.ready.is_set(),
    }
    ingest = ctx.ingester.health()
    ok = database and all(tables.values()) and ingest["ingesting"]
    body = {"service": "control", "ok": ok, "database": database, "tables": tables, **ingest}
    return web.json_response(body, status=200 if ok else 503)


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def create_app(ctx: ControlContext) -> web.Application:
    auth = TokenAuth(ctx.control.admin_tokens, ctx.control.read_tokens)
    app = web.Application(
        middlewares=[
            middleware.observe,
            middleware.errors,
            console.skip_console(auth.middleware()),  # the console checks its own sessions
        ],
        client_max_size=middleware.MAX_BODY_BYTES,
    )
    app[CTX] = ctx
    app.add_routes(
        [
            web.get("/health", _health),
            web.get("/metrics", _metrics),
            web.get("/openapi.json", openapi.serve),
        ]
    )
    for module in (configs_api, credentials_api, mappings, runs, events, resend, oauth):
        app.add_routes(module.routes())
    console.setup(app, auth)
    return app
