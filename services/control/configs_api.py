"""Integration configurations over HTTP: CRUD, enable/disable, credential attach/detach,
connection status. Every write goes through the single ConfigWriter."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from services.control import connections
from services.control.auth import actor_of
from services.control.context import CTX, ControlContext
from services.control.errors import validation_error
from services.control.params import boolean, json_object, one_of, page_by_id
from services.control.validation import DESTINATIONS, parse_checked
from shared.contracts import IntegrationConfig


def _ctx(request: web.Request) -> ControlContext:
    return request.app[CTX]


def _parse(request: web.Request, body: dict[str, Any]) -> IntegrationConfig:
    ctx = _ctx(request)
    return parse_checked(body, ctx.credentials.table.data, ctx.users)


async def create(request: web.Request) -> web.Response:
    body = await json_object(request)
    body["id"] = body.get("id") or f"cfg_{uuid.uuid4().hex[:16]}"
    body["version"] = 1
    config = await _ctx(request).configs.create(_parse(request, body), actor_of(request))
    return web.json_response(config.to_wire(), status=201)


async def list_(request: web.Request) -> web.Response:
    found = _ctx(request).configs.all()
    destination = one_of(request, "destination", DESTINATIONS)
    if destination is not None:
        found = [c for c in found if c.destination.value == destination]
    if "enabled" in request.query:
        enabled = boolean(request, "enabled")
        found = [c for c in found if c.enabled is enabled]
    page, token = page_by_id(found, request)
    return web.json_response({"data": [c.to_wire() for c in page], "nextToken": token})


async def get(request: web.Request) -> web.Response:
    return web.json_response(_ctx(request).configs.require(request.match_info["id"]).to_wire())


async def update(request: web.Request) -> web.Response:
    config_id = request.match_info["id"]
    current = _ctx(request).configs.require(config_id)
    body = await json_object(request)
    if body.get("id", config_id) != config_id:
        raise validation_error("the body's id differs from the path's id")
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise validation_error(
            f"send the version you are updating (the current version is {current.version})",
            [{"field": "version", "message": "required: the current version"}],
        )
    if body.get("destination", current.destination.value) != current.destination.value:
        raise validation_error(
            "a configuration's destination cannot change; create a new configuration",
            [{"field": "destination", "message": f"this is a {current.destination.value} one"}],
        )
    # enabled and the credential have their own endpoints: left out, they stay as they are
    # (so re-applying a file never re-enables a configuration the monitor disabled).
    body.setdefault("enabled", current.enabled)
    body.setdefault("integrationCredentialsId", current.integration_credentials_id)
    new = _parse(request, {**body, "id": config_id})

    def replace(existing: IntegrationConfig) -> IntegrationConfig | None:
        same = new.model_copy(update={"version": existing.version}) == existing
        return None if same else new

    config, _ = await _ctx(request).configs.modify(
        config_id, replace, "update", actor_of(request), expected_version=version
    )
    return web.json_response(config.to_wire())


async def delete(request: web.Request) -> web.Response:
    raw = request.query.get("version")
    expected = None
    if raw is not None:
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            raise validation_error(
                "version must be a whole number: the version you are deleting",
                [{"field": "version", "message": "a whole number"}],
            )
        expected = int(raw)
    config = await _ctx(request).configs.delete(
        request.match_info["id"], actor_of(request), expected
    )
    return web.json_response(config.to_wire())


async def _set_enabled(request: web.Request, enabled: bool) -> web.Response:
    body = await json_object(request, required=False)
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise validation_error("reason must be a string")

    def toggle(existing: IntegrationConfig) -> IntegrationConfig | None:
        if existing.enabled is enabled:
            return None  # idempotent: already in the wanted state, no new version
        return existing.model_copy(update={"enabled": enabled})

    config, _ = await _ctx(request).configs.modify(
        request.match_info["id"],
        toggle,
        "enable" if enabled else "disable",
        actor_of(request),
        reason=(reason or "")[:2000] or None,
    )
    return web.json_response(config.to_wire())


async def enable(request: web.Request) -> web.Response:
    return await _set_enabled(request, True)


async def disable(request: web.Request) -> web.Response:
    return await _set_enabled(request, False)


async def attach_credential(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    current = ctx.configs.require(request.match_info["id"])
    body = await json_object(request)
    cred_id = body.get("integrationCredentialsId")
    if not isinstance(cred_id, str) or not cred_id:
        raise validation_error(
            "integrationCredentialsId is required",
            [{"field": "integrationCredentialsId", "message": "required"}],
        )
    config = await connect(ctx, current, cred_id, actor_of(request))
    return web.json_response(config.to_wire())


async def connect(
    ctx: ControlContext, current: IntegrationConfig, cred_id: str, actor: str
) -> IntegrationConfig:
    """Connecting verifies: one cheap authenticated call, and the key's mode (see
    connections.py). A refused key is not attached."""
    check = await connections.verify(ctx, current, cred_id)
    if not check.ok:
        raise connections.refusal(check)
    return await attach(ctx, current.id, cred_id, actor)


async def attach(
    ctx: ControlContext, config_id: str, cred_id: str | None, actor: str
) -> IntegrationConfig:
    def point(existing: IntegrationConfig) -> IntegrationConfig | None:
        if existing.integration_credentials_id == cred_id:
            return None
        return existing.model_copy(update={"integration_credentials_id": cred_id})

    action = "attach_credential" if cred_id else "detach_credential"
    config, _ = await ctx.configs.modify(config_id, point, action, actor)
    return config


async def detach_credential(request: web.Request) -> web.Response:
    config = await attach(_ctx(request), request.match_info["id"], None, actor_of(request))
    return web.json_response(config.to_wire())


async def connection(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    config = ctx.configs.require(request.match_info["id"])
    return web.json_response(await connections.status(ctx, config))


async def verify_connection(request: web.Request) -> web.Response:
    """Check the attached credential now; a failed check is an answer (FAILED), not an
    error."""
    ctx = _ctx(request)
    config = ctx.configs.require(request.match_info["id"])
    if not config.integration_credentials_id:
        raise validation_error("no credential is attached: attach one first")
    await connections.verify(ctx, config, config.integration_credentials_id)
    return web.json_response(await connections.status(ctx, config))


async def changes(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    config_id = request.match_info["id"]
    found = await ctx.store.list_config_changes(config_id)
    if not found:
        ctx.configs.require(config_id)
    data = [
        {
            "integrationConfigId": c.integration_config_id,
            "version": c.version,
            "action": c.action,
            "actor": c.actor,
            "reason": c.reason,
            "dtChanged": c.dt_changed.isoformat(),
        }
        for c in found
    ]
    return web.json_response({"data": data, "nextToken": None})


def routes() -> list[web.RouteDef]:
    base = "/integrationconfigs"
    return [
        web.get(base, list_),
        web.post(base, create),
        web.get(base + "/{id}", get),
        web.put(base + "/{id}", update),
        web.delete(base + "/{id}", delete),
        web.post(base + "/{id}/enable", enable),
        web.post(base + "/{id}/disable", disable),
        web.post(base + "/{id}/credential", attach_credential),
        web.delete(base + "/{id}/credential", detach_credential),
        web.get(base + "/{id}/connection", connection),
        web.post(base + "/{id}/connection/verify", verify_connection),
        web.get(base + "/{id}/changes", changes),
    ]
