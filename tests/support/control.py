"""The control plane in-process for tests: API on a free port plus its results ingester.

    async with running_control_plane(settings) as cp:
        async with aiohttp.ClientSession() as http:
            await http.post(f"{cp.base_url}/integrationconfigs/cfg-1/disable",
                            headers=cp.admin_headers, json={"reason": "10 errors"})

Credentials written through the API are encrypted with `settings.credentials_key` when it
is set (so sinks built from the same settings can read them), else with a fresh key
exposed as `cp.credentials_key`."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from services.control.main import ControlPlane
from services.control.settings import ControlSettings
from shared.credentials import generate_key
from shared.settings import Settings
from shared.sinks.oauth import OAuthClientSettings


@dataclass
class ControlPlaneHandle:
    base_url: str
    admin_token: str
    read_token: str
    credentials_key: str
    database_url: str
    plane: ControlPlane | None = field(default=None, repr=False)  # None: another process

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def read_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.read_token}"}


@contextlib.asynccontextmanager
async def running_control_plane(
    settings: Settings,
    database_url: str | None = None,
    oauth: Mapping[str, OAuthClientSettings] | None = None,
    **control: Any,
) -> AsyncIterator[ControlPlaneHandle]:
    """`database_url` defaults to a fresh SQLite file; `oauth` gives OAuth flows' own
    settings by provider name (e.g. {"xero": XeroOAuthSettings(token_url=...)}) in place of
    the environment's; `control` overrides ControlSettings fields (e.g. users_file)."""
    admin, read = f"adm-{secrets.token_hex(16)}", f"rd-{secrets.token_hex(16)}"
    key = settings.credentials_key.get_secret_value() if settings.credentials_key else None
    key = key or generate_key()
    with tempfile.TemporaryDirectory(prefix="billsync-control-") as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'control.db'}"
        control_settings = ControlSettings(
            host="127.0.0.1",
            port=0,
            admin_tokens=[SecretStr(admin)],
            read_tokens=[SecretStr(read)],
            database_url=url,
            **control,
        )
        plane_settings = settings.model_copy(update={"credentials_key": SecretStr(key)})
        plane = ControlPlane(plane_settings, control_settings, oauth)
        try:
            await plane.start()
            yield ControlPlaneHandle(
                base_url=plane.base_url,
                admin_token=admin,
                read_token=read,
                credentials_key=key,
                database_url=url,
                plane=plane,
            )
        finally:
            await plane.stop()


# ---- database backends for parametrized tests -------------------------------------------

POSTGRES_ENV = "BILLSYNC_TEST_POSTGRES_URL"


def database_backends() -> list[str]:
    """SQLite always; PostgreSQL too when BILLSYNC_TEST_POSTGRES_URL names a server
    (deploy/postgres/pg.sh up prints one)."""
    return ["sqlite", "postgresql"] if os.environ.get(POSTGRES_ENV) else ["sqlite"]


@contextlib.asynccontextmanager
async def fresh_database(backend: str) -> AsyncIterator[str | None]:
    """None for SQLite (running_control_plane makes a temporary file); for PostgreSQL a new
    database on the test server, dropped afterwards, so tests never share rows."""
    if backend == "sqlite":
        yield None
        return
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    admin = make_url(os.environ[POSTGRES_ENV])
    name = f"billsync_test_{secrets.token_hex(6)}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


class Api:
    """`status, body = await api.call("GET", "/integrationconfigs")` as admin by default;
    `as_="read"` uses the read-only token, `as_=None` sends no token. Every response is
    kept in `responses` (the secrets test scans them)."""

    def __init__(self, handle: ControlPlaneHandle, session: aiohttp.ClientSession) -> None:
        self.handle = handle
        self.session = session
        self.responses: list[str] = []

    async def call(
        self, method: str, path: str, as_: str | None = "admin", **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if as_ == "admin":
            headers.update(self.handle.admin_headers)
        elif as_ == "read":
            headers.update(self.handle.read_headers)
        url = self.handle.base_url + path
        async with self.session.request(method, url, headers=headers, **kwargs) as resp:
            text = await resp.text()
            self.responses.append(text)
            return resp.status, (json.loads(text) if text else None)


@contextlib.asynccontextmanager
async def api_for(
    settings: Settings, backend: str = "sqlite", **control: Any
) -> AsyncIterator[Api]:
    async with (
        fresh_database(backend) as url,
        running_control_plane(settings, url, **control) as handle,
        aiohttp.ClientSession() as session,
    ):
        yield Api(handle, session)


# ---- a fake OAuth provider (Stripe Connect and Xero token endpoints) ---------------------

STRIPE_ACCESS = "sk_test_connected_oauth_access_token"
XERO_ACCESS = "xero-oauth-access-token-value"
XERO_REFRESH = "xero-oauth-refresh-token-value"


@dataclass
class FakeProvider:
    """Token endpoints for both providers; records what the control plane sent."""

    base_url: str = ""
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    livemode: bool = False

    async def stripe_token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.exchanges.append(
            {"provider": "stripe", "auth": request.headers.get("Authorization"), **form}
        )
        if form.get("code") != "good-code":
            return web.json_response(
                {"error": "invalid_grant", "error_description": "unknown code"},
                status=400,
            )
        return web.json_response(
            {
                "access_token": STRIPE_ACCESS,
                "livemode": self.livemode,
                "stripe_user_id": "acct_1Connected",
                "token_type": "bearer",
                "refresh_token": "rt_stripe",
                "scope": "read_write",
            }
        )

    async def xero_token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.exchanges.append(
            {"provider": "xero", "auth": request.headers.get("Authorization"), **form}
        )
        return web.json_response(
            {
                "access_token": XERO_ACCESS,
                "refresh_token": XERO_REFRESH,
                "expires_in": 1800,
                "token_type": "Bearer",
            }
        )

    async def xero_connections(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {XERO_ACCESS}"
        return web.json_response(
            [{"tenantId": "tenant-42", "tenantType": "ORGANISATION", "tenantName": "Demo Co"}]
        )


@contextlib.asynccontextmanager
async def fake_oauth_provider() -> AsyncIterator[FakeProvider]:
    fake = FakeProvider()
    app = web.Application()
    app.add_routes(
        [
            web.post("/stripe/token", fake.stripe_token),
            web.post("/xero/token", fake.xero_token),
            web.get("/xero/connections", fake.xero_connections),
        ]
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
