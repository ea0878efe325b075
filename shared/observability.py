"""/metrics (Prometheus text format) and /health on every service, served by aiohttp."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

import shared.buildinfo  # noqa: F401  (billsync_build_info on every /metrics)

HealthCheck = Callable[[], dict[str, Any]]


class ObservabilityServer:
    """Serves metrics and health; `health` returns details and `ok` decides 200 or 503."""

    def __init__(
        self,
        service: str,
        health: HealthCheck,
        registry: CollectorRegistry = REGISTRY,
        extra_routes: list[web.RouteDef] | None = None,
    ) -> None:
        self.service = service
        self._health = health
        self._registry = registry
        self._app = web.Application()
        self._app.add_routes(
            [web.get("/metrics", self._metrics), web.get("/health", self._health_view)]
            + (extra_routes or [])
        )
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health_view(self, _: web.Request) -> web.Response:
        details = {"service": self.service, **self._health()}
        status = 200 if details.get("ok", False) else 503
        return web.json_response(details, status=status)

    async def start(self, host: str, port: int) -> int:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
