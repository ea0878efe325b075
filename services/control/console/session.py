"""Console sessions: an API token is exchanged once for an HttpOnly, SameSite=Strict
cookie naming a server-side session (role, actor label, CSRF token). The token itself is
never stored, rendered or logged.

Every POST must carry the session's CSRF token (form field `_csrf` or header
`X-CSRF-Token`); the login form, which has no session yet, uses a double-submit cookie."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from services.control.auth import Role

COOKIE = "billsync_console"
LOGIN_COOKIE = "billsync_console_login"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"
IDLE_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000


@dataclass
class Session:
    role: Role
    actor: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_seen: float = field(default_factory=time.monotonic)
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, message)

    @property
    def can_write(self) -> bool:
        return self.role is Role.ADMIN

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf.encode(), (sent or "").encode())


class Sessions:
    """In memory: a restart of the control plane signs everyone out (nothing to leak)."""

    def __init__(self, role_for: Callable[[str], Role | None], actor: Callable[[str, Role], str]):
        self._role_for = role_for
        self._actor = actor
        self._by_id: dict[str, Session] = {}

    def login(self, token: str) -> tuple[str, Session] | None:
        role = self._role_for(token.strip())
        if role is None:
            return None
        self._expire()
        session_id = secrets.token_urlsafe(32)
        session = Session(role=role, actor=self._actor(token.strip(), role))
        self._by_id[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > IDLE_SECONDS:
            del self._by_id[session_id]
            return None
        session.last_seen = now
        return session

    def logout(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._by_id.items() if now - s.last_seen > IDLE_SECONDS]:
            del self._by_id[key]
        while len(self._by_id) >= MAX_SESSIONS:  # oldest first
            del self._by_id[min(self._by_id, key=lambda k: self._by_id[k].last_seen)]


def set_cookie(response: web.StreamResponse, name: str, value: str, secure: bool) -> None:
    response.set_cookie(
        name, value, path="/console", httponly=True, samesite="Strict", secure=secure
    )


async def sent_csrf(request: web.Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
