"""Offline schema validation of Kubernetes objects.

Built-in kinds are checked against the API models of the official Kubernetes Python client
(`kubernetes` package): every field must exist in the model (a misspelt field is refused,
as `kubectl apply --validate=strict` would), every value must have the model's type, and
building the model enforces its required fields. Custom resources (Strimzi KafkaTopic,
KEDA ScaledObject and TriggerAuthentication) are checked against the JSON Schemas in
deploy/k8s/schemas/. No network is needed."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from kubernetes import client as k8s

SCHEMAS = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "schemas"
PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
    "datetime": str,
    "date": str,
}


class InvalidObject(ValueError):
    pass


def model_name(api_version: str, kind: str) -> str:
    version = api_version.split("/")[-1]
    return f"{version.capitalize()}{kind}"


def validate(obj: dict[str, Any]) -> None:
    """Raise InvalidObject saying where and what, for an object Kubernetes would refuse."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    where = f"{kind} {obj.get('metadata', {}).get('name')}"
    schema = crd_schema(api_version, kind)
    if schema is not None:
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(obj), key=str)
        if errors:
            path = "/".join(str(p) for p in errors[0].absolute_path)
            raise InvalidObject(f"{where}: {path}: {errors[0].message}")
        return
    name = model_name(api_version, kind)
    if not hasattr(k8s, name):
        raise InvalidObject(f"{where}: no schema for {api_version} {kind}")
    build(obj, name, where)


@cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    group = api_version.split("/")[0]
    version = api_version.split("/")[-1]
    path = SCHEMAS / f"{kind.lower()}-{group}-{version}.json"
    if not path.exists():
        return None
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def build(value: Any, type_name: str, where: str) -> Any:
    """Check `value` against the client's type `type_name`; return the built model."""
    if type_name == "object":  # IntOrString, RawExtension, ...: any JSON
        return value
    if type_name in PRIMITIVES:
        expected = PRIMITIVES[type_name]
        if not isinstance(value, expected) or (type_name == "int" and isinstance(value, bool)):
            raise InvalidObject(f"{where}: {value!r} is not {type_name}")
        return value
    if match := re.fullmatch(r"[lL]ist\[(.+)\]", type_name):
        if not isinstance(value, list):
            raise InvalidObject(f"{where}: expected a list")
        return [build(v, match.group(1), f"{where}[{i}]") for i, v in enumerate(value)]
    if match := re.fullmatch(r"dict\(str, (.+)\)|Dict\[str, (.+)\]", type_name):
        if not isinstance(value, dict):
            raise InvalidObject(f"{where}: expected a map")
        item_type = match.group(1) or match.group(2)
        return {k: build(v, item_type, f"{where}.{k}") for k, v in value.items()}
    model = getattr(k8s, type_name)
    if not isinstance(value, dict):
        raise InvalidObject(f"{where}: expected a {type_name} object")
    by_json = {json_key: attr for attr, json_key in model.attribute_map.items()}
    kwargs = {}
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            raise InvalidObject(f"{where}: unknown field {key!r} in {type_name}")
        kwargs[attr] = build(item, model.openapi_types[attr], f"{where}.{key}")
    try:
        return model(**kwargs)
    except ValueError as exc:  # the client's required-field and enum checks
        raise InvalidObject(f"{where}: {exc}") from exc
