"""Bearer tokens: admin tokens may write, read tokens may only read.

Tokens are compared in constant time; a request is logged with an actor label derived
from a hash of its token, never the token itself."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from enum import StrEnum

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import SecretStr

from services.control.errors import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/health", "/metrics", "/openapi.json"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Role(StrEnum):
    ADMIN = "admin"
    READ = "read"


ACTOR = web.RequestKey("billsync_actor", str)
ROLE = web.RequestKey("billsync_role", Role)


def _is_open(request: web.Request) -> bool:
    path = request.path
    # The OAuth begin and callback are reached by the user's browser; the signed, recorded,
    # single-use state (and the cookie `begin` sets) authorises them.
    return path in OPEN_PATHS or (
        path.startswith("/oauth/") and path.endswith(("/begin", "/callback"))
    )


def _needs_admin(request: web.Request) -> bool:
    # Starting an OAuth flow is a GET but leads to a write (a credential is stored).
    return request.method not in READ_METHODS or (
        request.path.startswith("/oauth/") and request.path.endswith("/start")
    )


class TokenAuth:
    def __init__(self, admin: list[SecretStr], read: list[SecretStr]) -> None:
        self._tokens = [(t.get_secret_value().encode(), Role.ADMIN) for t in admin] + [
            (t.get_secret_value().encode(), Role.READ) for t in read
        ]

    @property
    def configured(self) -> bool:
        return bool(self._tokens)

    def role_for(self, token: str) -> Role | None:
        found: Role | None = None
        raw = token.encode()
        for known, role in self._tokens:  # no early exit: timing says nothing
            if hmac.compare_digest(known, raw) and found is None:
                found = role
        return found

    @staticmethod
    def actor(token: str, role: Role) -> str:
        return f"{role.value}:{hashlib.sha256(token.encode()).hexdigest()[:10]}"

    def middleware(self) -> Middleware:
        @web.middleware
        async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
            if _is_open(request):
                request[ACTOR] = "anonymous"
                return await handler(request)
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            role = self.role_for(token.strip()) if scheme.lower() == "bearer" else None
            if role is None:
                raise ApiError(
                    401, "unauthorized", "send a valid token: Authorization: Bearer <token>"
                )
            if role is Role.READ and _needs_admin(request):
                raise ApiError(
                    403, "forbidden", "this token is read-only; writes need an admin token"
                )
            request[ROLE] = role
            request[ACTOR] = self.actor(token.strip(), role)
            return await handler(request)

        return authenticate


def actor_of(request: web.Request) -> str:
    actor: str = request.get(ACTOR, "anonymous")
    return actor
