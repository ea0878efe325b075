"""Xero's official OpenAPI document (spec/xero_accounting.yaml, MIT, XeroAPI/Xero-OpenAPI)
as request validators: one element (an Invoice, a CreditNote) checked against its schema.

The fake validates every request body with these, and the sink's tests check what the sink
sends with the same ones, so both sides are held to Xero's own description."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT4

SPEC_DIR = Path(__file__).parent / "spec"
ACCOUNTING = SPEC_DIR / "xero_accounting.yaml"
_URI = "urn:xero-accounting"


@functools.cache
def accounting() -> dict[str, Any]:
    with ACCOUNTING.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(
            handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    return document


@functools.cache
def validator(schema_name: str) -> Draft4Validator:
    """A validator for `#/components/schemas/<schema_name>` (OpenAPI 3.0 schemas are a
    draft-4 dialect; `x-*`, `readOnly` and `externalDocs` are annotations)."""
    document = accounting()
    if schema_name not in document["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in {ACCOUNTING.name}")
    registry: Registry[Any] = Registry().with_resource(_URI, DRAFT4.create_resource(document))
    return Draft4Validator(
        {"$ref": f"{_URI}#/components/schemas/{schema_name}"},
        registry=registry,
        format_checker=FormatChecker(),
    )


def _path(error: ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(body)"


def errors(schema_name: str, instance: Any) -> list[str]:
    """What the spec says is wrong with `instance`, one message per problem (empty: valid)."""
    found: Iterator[ValidationError] = validator(schema_name).iter_errors(instance)
    return [
        f"{_path(e)}: {e.message}"
        for e in sorted(found, key=lambda e: list(map(str, e.absolute_path)))
    ]
