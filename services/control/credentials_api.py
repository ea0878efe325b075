"""Integration credentials over HTTP. Responses carry public settings and the names of
the secrets that are set (`secretsSet`), never a secret value, masked or not."""

from __future__ import annotations

from aiohttp import web

from services.control.auth import actor_of
from services.control.context import CTX
from services.control.credentials import TYPES
from services.control.params import json_object, one_of, page_by_id


async def create(request: web.Request) -> web.Response:
    writer = request.app[CTX].credentials
    stored = await writer.create(await json_object(request), actor_of(request))
    return web.json_response(writer.view(stored), status=201)


async def rotate(request: web.Request) -> web.Response:
    writer = request.app[CTX].credentials
    stored = await writer.rotate(
        request.match_info["id"], await json_object(request), actor_of(request)
    )
    return web.json_response(writer.view(stored))


async def get(request: web.Request) -> web.Response:
    writer = request.app[CTX].credentials
    return web.json_response(writer.view(writer.require(request.match_info["id"])))


async def list_(request: web.Request) -> web.Response:
    writer = request.app[CTX].credentials
    found = writer.all()
    kind = one_of(request, "type", TYPES)
    if kind is not None:
        found = [c for c in found if c.type.value == kind]
    page, token = page_by_id(found, request)
    return web.json_response({"data": [writer.view(c) for c in page], "nextToken": token})


async def delete(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    cred_id = request.match_info["id"]
    stored = ctx.credentials.require(cred_id)
    users = [c.id for c in ctx.configs.all() if c.integration_credentials_id == cred_id]
    view = ctx.credentials.view(stored)
    await ctx.credentials.delete(cred_id, users, actor_of(request))
    return web.json_response(view)


def routes() -> list[web.RouteDef]:
    base = "/integrationcredentials"
    return [
        web.get(base, list_),
        web.post(base, create),
        web.get(base + "/{id}", get),
        web.put(base + "/{id}", rotate),
        web.delete(base + "/{id}", delete),
    ]
