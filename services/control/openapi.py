"""The OpenAPI 3.1 document: paths and small shapes from openapi.yaml; the contract
schemas (configurations, credentials, mappings) generated from the pydantic models, so
the document cannot drift from what the API validates."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from pydantic import TypeAdapter

from services.control.mappings import MappingBody, MappingView
from shared.contracts import IntegrationConfigAdapter
from shared.credentials import CredentialAdapter

REF = "#/components/schemas/{model}"
_YAML = Path(__file__).with_name("openapi.yaml")


def _inputs(
    union: dict[str, Any], schemas: dict[str, Any], optional: set[str], required: set[str]
) -> dict[str, Any]:
    """The request variant of a discriminated union: the server fills `optional` fields."""
    out = copy.deepcopy(union)
    renamed: dict[str, str] = {}
    for option in out["oneOf"]:
        name = option["$ref"].rsplit("/", 1)[1]
        variant = copy.deepcopy(schemas[name])
        fields = [f for f in variant.get("required", []) if f not in optional]
        variant["required"] = fields + sorted(required - set(fields))
        schemas[f"{name}Input"] = variant
        renamed[option["$ref"]] = REF.format(model=f"{name}Input")
        option["$ref"] = renamed[option["$ref"]]
    mapping = out.get("discriminator", {}).get("mapping", {})
    for tag, ref in mapping.items():
        mapping[tag] = renamed.get(ref, ref)
    return out


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(_YAML.read_text())
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    generated, defs = TypeAdapter.json_schemas(
        [
            ("config", "serialization", IntegrationConfigAdapter),
            ("config_in", "validation", IntegrationConfigAdapter),
            ("credential_in", "validation", CredentialAdapter),
            ("mapping", "serialization", TypeAdapter(MappingView)),
            ("mapping_in", "validation", TypeAdapter(MappingBody)),
        ],
        by_alias=True,
        ref_template=REF,
    )
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas["IntegrationConfig"] = generated[("config", "serialization")]
    schemas["IntegrationConfigInput"] = _inputs(
        generated[("config_in", "validation")], schemas, {"id", "version"}, set()
    )
    schemas["IntegrationCredentialInput"] = _inputs(
        generated[("credential_in", "validation")], schemas, {"id", "version"}, {"type"}
    )
    return doc


async def serve(_: web.Request) -> web.Response:
    return web.json_response(document())
