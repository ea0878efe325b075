"""Request metrics and logs, and the translation of every failure into the error shape."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import Counter, Histogram

from services.control.auth import actor_of
from services.control.errors import ApiError
from shared.logging import get_logger

log = get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUESTS = Counter(
    "billsync_control_requests_total", "Control-plane API requests", ["method", "route", "status"]
)
LATENCY = Histogram(
    "billsync_control_request_seconds", "Control-plane API latency", ["method", "route"]
)
MAX_BODY_BYTES = 1024 * 1024  # the largest body the API reads (aiohttp answers 413 above)
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "validation_error"}
_MESSAGES = {
    404: "no such path",
    413: "the body is larger than {limit} bytes; send a smaller request",
}


def _route(request: web.Request) -> str:
    # The route template (/integrationconfigs/{id}), not the path: bounded label values.
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = _route(request)
        elapsed = time.perf_counter() - started
        REQUESTS.labels(request.method, route, str(status)).inc()
        LATENCY.labels(request.method, route).observe(elapsed)
        if route not in {"/health", "/metrics"}:
            # The path only: a query string may carry an OAuth code or state.
            log.info(
                "request",
                method=request.method,
                path=request.path,
                status=status,
                ms=round(elapsed * 1000, 1),
                actor=actor_of(request),
            )


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    headers = dict(headers or {})
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return web.json_response(error.body(), status=error.status, headers=headers)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects
        code = _HTTP_CODES.get(exc.status, "bad_request")
        message = _MESSAGES.get(exc.status, exc.reason).format(limit=MAX_BODY_BYTES)
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(ApiError(exc.status, code, message), allow)
    except Exception:
        log.exception("request_failed", method=request.method, path=request.path)
        return error_response(ApiError(500, "internal_error", "internal error; see the server log"))
