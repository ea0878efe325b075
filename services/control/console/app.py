"""The console sub-application: sessions, CSRF, roles, templates, static files."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.typedefs import Middleware

from services.control.auth import ACTOR, ROLE, TokenAuth
from services.control.console import pages, session, views_configs, views_ops
from services.control.console.data import AccountBook
from services.control.console.state import BOOK, JOBS, SESSION, SESSIONS, JobBoard
from services.control.context import CTX, ControlContext
from services.control.errors import ApiError
from shared.logging import get_logger

log = get_logger(__name__)
PREFIX = "/console"
CSP_KEY = web.AppKey("billsync_console_csp", str)
HERE = Path(__file__).parent
# Pages reachable without a session.
OPEN = frozenset({"login", "login_post", "static", "oauth_done"})
# POSTs a read-only user may make: they change nothing.
READ_POSTS = frozenset({"logout", "preview_draft", "replay_dry_run"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def skip_console(auth_middleware: Middleware) -> Middleware:
    """The API's bearer-token check, for every path but the console's own (the console
    authenticates with its session cookie)."""

    @web.middleware
    async def unless_console(request: web.Request, handler: session.Handler) -> web.StreamResponse:
        if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
            return await handler(request)
        return await auth_middleware(request, handler)

    return unless_console


def _route_name(request: web.Request) -> str:
    route = request.match_info.route
    if route.name:
        return route.name
    resource = route.resource
    return resource.name if resource is not None and resource.name else ""


@web.middleware
async def guard(request: web.Request, handler: session.Handler) -> web.StreamResponse:
    response = await _guarded(request, handler)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Content-Security-Policy", request.app[CSP_KEY])
    return response


async def _guarded(request: web.Request, handler: session.Handler) -> web.StreamResponse:
    name = _route_name(request)
    request[ACTOR] = "anonymous"
    if name not in OPEN:
        current = request.app[SESSIONS].get(request.cookies.get(session.COOKIE))
        if current is None:
            if request.method == "GET" and not request.headers.get("HX-Request"):
                raise web.HTTPSeeOther(f"{PREFIX}/login?next={request.path_qs}")
            return pages.problem(request, 401, "Signed out", "Your session ended: sign in again.")
        request[SESSION] = current
        request[ROLE] = current.role
        request[ACTOR] = current.actor
        if request.method == "POST":
            if not current.csrf_ok(await session.sent_csrf(request)):
                log.warning("console_csrf_refused", path=request.path, actor=current.actor)
                return pages.problem(
                    request,
                    403,
                    "Refused",
                    "This form has no valid CSRF token. Reload the page and try again.",
                )
            if name not in READ_POSTS and not current.can_write:
                return pages.problem(
                    request,
                    403,
                    "Read-only access",
                    "You signed in with a read-only token; changes need an admin token.",
                )
    try:
        return await handler(request)
    except ApiError as exc:
        return pages.problem(request, exc.status, "Refused", exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects
        title = "Not found" if exc.status == 404 else "Refused"
        message = "There is no such page." if exc.status == 404 else exc.reason
        return pages.problem(request, exc.status, title, message)
    except Exception:
        log.exception("console_request_failed", method=request.method, path=request.path)
        return pages.problem(
            request, 500, "Something went wrong", "The request failed; see the server log."
        )


def content_policy(ctx: ControlContext) -> str:
    """Forms may only go to the console, and to the OAuth providers' authorize pages (the
    Connect button's redirect)."""
    return f"{CSP} {' '.join(ctx.oauth.authorize_origins())}"


def setup(app: web.Application, auth: TokenAuth) -> None:
    """Mount the console at /console on the control plane's application."""
    ctx: ControlContext = app[CTX]
    console = web.Application(middlewares=[guard])
    console[CTX] = ctx
    console[CSP_KEY] = content_policy(ctx)
    console[SESSIONS] = session.Sessions(auth.role_for, TokenAuth.actor)
    console[BOOK] = AccountBook(ctx.settings)
    console[JOBS] = JobBoard()
    aiohttp_jinja2.setup(
        console,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    env = aiohttp_jinja2.get_env(console)
    env.filters.update(pages.FILTERS)
    env.globals.update(pages.GLOBALS)
    console.router.add_static("/static", HERE / "static", name="static")
    console.add_routes(pages.routes() + views_configs.routes() + views_ops.routes())
    console.on_startup.append(_start)
    console.on_cleanup.append(_stop)
    app.add_subapp(PREFIX, console)
    app.router.add_get(PREFIX, _to_console)


async def _to_console(_: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(PREFIX + "/")


async def _start(console: web.Application) -> None:
    await console[BOOK].start()


async def _stop(console: web.Application) -> None:
    await console[JOBS].stop()
    await console[BOOK].stop()
