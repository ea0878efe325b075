"""Sign in and out, the error page, and the helpers every view uses."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from services.control.console import session
from services.control.console.state import SESSION, SESSIONS
from services.control.context import CTX, ControlContext
from shared.logging import get_logger

log = get_logger(__name__)
PREFIX = "/console"


def ctx_of(request: web.Request) -> ControlContext:
    return request.app[CTX]


def base_context(request: web.Request) -> dict[str, Any]:
    current = request.get(SESSION)
    flash = list(current.flash) if current else []
    if current:
        current.flash.clear()
    return {
        "session": current,
        "can_write": bool(current and current.can_write),
        "csrf": current.csrf if current else "",
        "flash": flash,
        "path": request.path,
        "prefix": PREFIX,
        "title": "billsync",
    }


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    full = {**base_context(request), **context}
    return aiohttp_jinja2.render_template(template, request, full, status=status)


def flash(request: web.Request, message: str, kind: str = "ok") -> None:
    current = request.get(SESSION)
    if current is not None:
        current.flash.append((kind, message))


def redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def problem(
    request: web.Request,
    status: int,
    title: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
) -> web.Response:
    template = "_problem.html" if request.headers.get("HX-Request") else "problem.html"
    context = {"title": title, "message": message, "details": details or [], "status": status}
    return render(request, template, context, status=status)


def _secure(request: web.Request) -> bool:
    return ctx_of(request).control.base_url().startswith("https://")


def _next(request: web.Request, raw: str | None) -> str:
    # Only a console path: never an open redirect.
    if raw and raw.startswith(PREFIX + "/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return PREFIX + "/"


async def login(request: web.Request) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {"login_csrf": token, "next": _next(request, request.query.get("next")), "error": None},
    )
    session.set_cookie(response, session.LOGIN_COOKIE, token, _secure(request))
    return response


async def login_post(request: web.Request) -> web.Response:
    form = await request.post()
    sent = str(form.get(session.CSRF_FIELD, ""))
    cookie = request.cookies.get(session.LOGIN_COOKIE, "")
    if not sent or not secrets.compare_digest(sent.encode(), cookie.encode()):
        return problem(
            request, 403, "Refused", "This form has no valid CSRF token. Reload the page."
        )
    started = request.app[SESSIONS].login(str(form.get("token", "")))
    target = _next(request, str(form.get("next", "")))
    if started is None:
        log.info("console_login_refused")
        fresh = secrets.token_urlsafe(24)
        response = render(
            request,
            "login.html",
            {"login_csrf": fresh, "next": target, "error": "That token is not valid."},
            status=401,
        )
        session.set_cookie(response, session.LOGIN_COOKIE, fresh, _secure(request))
        return response
    session_id, current = started
    log.info("console_login", actor=current.actor, role=current.role.value)
    response = web.HTTPSeeOther(target)
    session.set_cookie(response, session.COOKIE, session_id, _secure(request))
    response.del_cookie(session.LOGIN_COOKIE, path=PREFIX)
    raise response


async def logout(request: web.Request) -> web.Response:
    request.app[SESSIONS].logout(request.cookies.get(session.COOKIE))
    response = web.HTTPSeeOther(PREFIX + "/login")
    response.del_cookie(session.COOKIE, path=PREFIX)
    raise response


async def home(request: web.Request) -> web.Response:
    raise redirect(PREFIX + "/configs")


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


STATUS_TONE = {
    "COMPLETE": "ok",
    "CONNECTED": "ok",
    "SKIPPED": "muted",
    "INVOICE_ALREADY_PAID": "muted",
    "DISABLED": "warn",
    "WAITING": "info",
    "STARTED": "info",
    "AWAITING_RETRY": "warn",
    "RATE_LIMIT_RETRY": "warn",
    "NOT_CONNECTED": "warn",
    "ERROR": "bad",
    "AUTH_FAILED": "bad",
    "TIMEOUT_LIMIT_EXCEEDED": "bad",
    "PAID": "ok",
    "FINALIZED": "info",
    "PAYMENT_FAILED": "bad",
    "VOID": "muted",
    "DELETED": "muted",
    "UNCOLLECTIBLE": "bad",
}

FILTERS = {"when": when, "tone": lambda status: STATUS_TONE.get(str(status), "muted")}
GLOBALS: dict[str, Any] = {}


def routes() -> list[web.RouteDef]:
    return [
        web.get("/login", login, name="login"),
        web.post("/login", login_post, name="login_post"),
        web.post("/logout", logout, name="logout"),
        web.get("/", home, name="home"),
    ]
