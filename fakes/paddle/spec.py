"""Request bodies checked against Paddle's own OpenAPI document (specs/paddle_billing.yaml).

The document is loaded once per process (it is large: a few seconds with libyaml) and its
component schemas are used as JSON Schema 2020-12 (OpenAPI 3.1 is JSON Schema). An error
names the field the way Paddle does (`items[0].price.unit_price.amount`)."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:paddle-billing"
# Paddle's document (PaddleHQ/paddle-openapi v1/openapi.yaml, Apache-2.0, LICENSE beside it),
# the same file as the project's shared specs/paddle_billing.yaml.
_DEFAULT = Path(__file__).resolve().parent / "openapi" / "paddle_billing.yaml"


def spec_path() -> Path:
    """`PADDLE_SPEC` if set (a newer snapshot), else the copy in this package."""
    env = os.environ.get("PADDLE_SPEC")
    return Path(env) if env else _DEFAULT


@functools.cache
def _document() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with spec_path().open("rb") as fh:
        doc: dict[str, Any] = yaml.load(fh, Loader=loader)  # a safe loader
    return doc


@functools.cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(_document(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return registry


@functools.cache
def validator(schema: str) -> Draft202012Validator:
    """A validator for `#/components/schemas/<schema>`."""
    return Draft202012Validator(
        {"$ref": f"{SPEC_URI}#/components/schemas/{schema}"}, registry=_registry()
    )


def field_name(error: ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


def _deepest(error: ValidationError) -> ValidationError:
    """Inside a oneOf/anyOf, the branch error that got furthest into the body."""
    if not error.context:
        return error
    inner = [_deepest(e) for e in error.context]
    depth = max(len(e.absolute_path) for e in inner)
    return best_match([e for e in inner if len(e.absolute_path) == depth]) or error


def check(schema: str, body: Any) -> list[tuple[str, str]]:
    """[(field, message)] for every problem the spec finds (the most relevant per branch)."""
    errors = list(validator(schema).iter_errors(body))
    out: list[tuple[str, str]] = []
    for error in errors:
        chosen = _deepest(error)
        out.append((field_name(chosen), chosen.message[:300]))
    return out


def currencies() -> frozenset[str]:
    enum = _document()["components"]["schemas"]["currency_code"]["enum"]
    return frozenset(str(c) for c in enum)
