"""External mappings: the single writer of the `external-mappings` topic, and its API."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pydantic
from aiohttp import web
from aiokafka import AIOKafkaProducer
from pydantic import Field

from services.control.auth import actor_of
from services.control.context import CTX
from services.control.errors import conflict, not_found, pydantic_details, validation_error
from services.control.params import json_object, page_by_id
from services.control.validation import as_json
from shared.contracts import ExternalMapping, ExternalSystem
from shared.contracts.base import StrictWireModel
from shared.kafka.table import CompactedTable
from shared.logging import get_logger
from shared.settings import Settings

log = get_logger(__name__)
_ID = r"^[A-Za-z0-9_.:\-]+$"


class MappingBody(StrictWireModel):
    """What a client may send: every field of the contract, with bounds."""

    id: str | None = Field(default=None, min_length=1, max_length=200, pattern=_ID)
    external_system: ExternalSystem
    external_table: str = Field(min_length=1, max_length=100)
    external_id: str = Field(min_length=1, max_length=200)
    m3ter_entity: str = Field(min_length=1, max_length=100, alias="m3terEntity")
    m3ter_id: str = Field(min_length=1, max_length=200, alias="m3terId")
    integration_config_id: str | None = Field(default=None, max_length=200)
    version: int | None = None


class MappingView(StrictWireModel):
    """The API's shape of a mapping. `m3terEntity`/`m3terId` are spelt as in m3ter's API
    (the contract's generated aliases would say `m3TerEntity`)."""

    id: str
    external_system: ExternalSystem
    external_table: str
    external_id: str
    m3ter_entity: str = Field(alias="m3terEntity")
    m3ter_id: str = Field(alias="m3terId")
    integration_config_id: str | None = None
    version: int

    @classmethod
    def of(cls, mapping: ExternalMapping) -> dict[str, Any]:
        fields = {name: getattr(mapping, name) for name in cls.model_fields}
        return cls.model_validate(fields).to_wire()


class MappingWriter:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._lock = asyncio.Lock()
        self.table = CompactedTable[ExternalMapping](
            settings.topics.name("external_mappings"),
            settings.kafka_bootstrap_servers,
            ExternalMapping.model_validate_json,
        )

    async def start(self) -> None:
        await self.table.start()

    async def stop(self) -> None:
        await self.table.stop()

    def require(self, mapping_id: str) -> ExternalMapping:
        mapping = self.table.get(mapping_id)
        if mapping is None:
            raise not_found("external mapping", mapping_id)
        return mapping

    def all(self) -> list[ExternalMapping]:
        return sorted(self.table.values(), key=lambda m: m.id)

    async def save(self, body: MappingBody, mapping_id: str | None, actor: str) -> ExternalMapping:
        async with self._lock:
            current = self.table.get(mapping_id) if mapping_id else None
            if mapping_id and current is None:
                raise not_found("external mapping", mapping_id)
            if current is None and body.id and body.id in self.table.data:
                raise conflict(f"external mapping {body.id!r} already exists; update it with PUT")
            if current is not None and body.version not in (None, current.version):
                raise conflict(
                    f"external mapping {current.id!r} is at version {current.version}, "
                    f"not {body.version}"
                )
            new_id = mapping_id or body.id or f"map_{uuid.uuid4().hex[:16]}"
            data = body.model_dump(exclude={"id", "version"})
            mapping = ExternalMapping(
                id=new_id, version=(current.version + 1) if current else 1, **data
            )
            self._check_unique(mapping)
            await self.table.write(self._producer, mapping.id, mapping, mapping.to_bytes())
            log.info("mapping_written", mapping_id=mapping.id, version=mapping.version, actor=actor)
            return mapping

    def _check_unique(self, mapping: ExternalMapping) -> None:
        # Sinks look a mapping up by (system, table, entity, m3ter id, parent
        # configuration): two answers to that question would make delivery ambiguous.
        for other in self.table.values():
            if other.id != mapping.id and _lookup_key(other) == _lookup_key(mapping):
                raise conflict(
                    f"external mapping {other.id!r} already maps {mapping.m3ter_entity} "
                    f"{mapping.m3ter_id!r} in {mapping.external_system.value} for this "
                    "parent configuration; update that mapping instead"
                )

    async def delete(self, mapping_id: str, actor: str) -> ExternalMapping:
        async with self._lock:
            mapping = self.require(mapping_id)
            await self.table.write(self._producer, mapping_id, None, None)
            log.info("mapping_deleted", mapping_id=mapping_id, actor=actor)
            return mapping


def _lookup_key(m: ExternalMapping) -> tuple[str, str, str, str, str | None]:
    # The table is part of the question: a Paddle account maps to a Customer, an Address
    # and a Business at once, each looked up by its own table.
    return (
        m.external_system.value,
        m.external_table.lower(),
        m.m3ter_entity,
        m.m3ter_id,
        m.integration_config_id,
    )


def _parse(body: dict[str, Any]) -> MappingBody:
    try:
        return MappingBody.model_validate_json(as_json(body), strict=True)
    except pydantic.ValidationError as exc:
        details = pydantic_details(exc)
        raise validation_error(
            f"the external mapping has {len(details)} problem(s); see details", details
        ) from None


def _checked(request: web.Request, body: dict[str, Any]) -> MappingBody:
    parsed = _parse(body)
    parent = parsed.integration_config_id
    if parent and request.app[CTX].configs.get(parent) is None:
        raise validation_error(
            "the parent configuration does not exist",
            [{"field": "integrationConfigId", "message": "no such configuration"}],
        )
    return parsed


async def create(request: web.Request) -> web.Response:
    body = _checked(request, await json_object(request))
    mapping = await request.app[CTX].mappings.save(body, None, actor_of(request))
    return web.json_response(MappingView.of(mapping), status=201)


async def update(request: web.Request) -> web.Response:
    body = _checked(request, await json_object(request))
    mapping_id = request.match_info["id"]
    if body.id not in (None, mapping_id):
        raise validation_error("the body's id differs from the path's id")
    mapping = await request.app[CTX].mappings.save(body, mapping_id, actor_of(request))
    return web.json_response(MappingView.of(mapping))


async def get(request: web.Request) -> web.Response:
    return web.json_response(
        MappingView.of(request.app[CTX].mappings.require(request.match_info["id"]))
    )


async def delete(request: web.Request) -> web.Response:
    mapping = await request.app[CTX].mappings.delete(request.match_info["id"], actor_of(request))
    return web.json_response(MappingView.of(mapping))


_FILTERS = {
    "externalSystem": "external_system",
    "integrationConfigId": "integration_config_id",
    "m3terEntity": "m3ter_entity",
    "m3terId": "m3ter_id",
    "externalTable": "external_table",
    "externalId": "external_id",
}


def _matches(mapping: ExternalMapping, wanted: dict[str, str]) -> bool:
    return all(str(getattr(mapping, attr) or "") == value for attr, value in wanted.items())


async def list_(request: web.Request) -> web.Response:
    wanted = {attr: request.query[q] for q, attr in _FILTERS.items() if q in request.query}
    found = [m for m in request.app[CTX].mappings.all() if _matches(m, wanted)]
    page, token = page_by_id(found, request)
    return web.json_response({"data": [MappingView.of(m) for m in page], "nextToken": token})


async def by_external_id(request: web.Request) -> web.Response:
    info = request.match_info
    wanted = {
        "external_system": info["system"],
        "external_table": info["table"],
        "external_id": info["externalId"],
    }
    found = [m for m in request.app[CTX].mappings.all() if _matches(m, wanted)]
    return web.json_response({"data": [MappingView.of(m) for m in found], "nextToken": None})


async def by_entity(request: web.Request) -> web.Response:
    info = request.match_info
    wanted = {"m3ter_entity": info["entity"], "m3ter_id": info["m3terId"]}
    found = [m for m in request.app[CTX].mappings.all() if _matches(m, wanted)]
    return web.json_response({"data": [MappingView.of(m) for m in found], "nextToken": None})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/externalmappings", list_),
        web.post("/externalmappings", create),
        web.get("/externalmappings/externalid/{system}/{table}/{externalId}", by_external_id),
        web.get("/externalmappings/entity/{entity}/{m3terId}", by_entity),
        web.get("/externalmappings/{id}", get),
        web.put("/externalmappings/{id}", update),
        web.delete("/externalmappings/{id}", delete),
    ]
