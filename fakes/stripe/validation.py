"""A small schema language for Stripe request parameters, with Stripe's error messages.

Each spec checks a decoded form value (strings and nested dicts, see ``forms``) and returns
a Python value. Failures raise ``StripeError`` at the ``"pre"`` stage: Stripe validates
parameters before the endpoint starts executing, so its idempotency layer does not save them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import StripeError, invalid

_INT = re.compile(r"^-?\d+$")
_DEC = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")


class _Unset:
    """An empty string posted to a parameter that can be unset (``metadata=``, ``due_date=``)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


def _empty_error(path: str) -> StripeError:
    return invalid(
        f"You passed an empty string for '{path}'. We assume empty values are an attempt to "
        f"unset a parameter; however '{path}' cannot be unset. You should remove '{path}' "
        "from your request or supply a non-empty value.",
        param=path,
        code="parameter_invalid_empty",
    )


def _sub(path: str, key: str) -> str:
    return f"{path}[{key}]" if path else key


def _preview(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


class Spec:
    nullable: bool = False

    def check(self, value: Any, path: str) -> Any:
        if value == "":
            if self.nullable:
                return UNSET
            if not isinstance(self, Str) or not self.allow_empty:
                raise _empty_error(path)
        if isinstance(value, dict) and not isinstance(self, Obj | Arr | Metadata | Loose):
            raise invalid(f"Invalid {self.kind()}: {path} must not have nested keys", param=path)
        return self.convert(value, path)

    def kind(self) -> str:
        return "value"

    def convert(self, value: Any, path: str) -> Any:
        return value


@dataclass(frozen=True)
class Loose(Spec):
    """A real Stripe parameter the fake accepts but does not model."""

    def convert(self, value: Any, path: str) -> Any:
        return value


@dataclass(frozen=True)
class Str(Spec):
    max_len: int = 5000
    enum: tuple[str, ...] | None = None
    allow_empty: bool = False
    nullable: bool = False

    def kind(self) -> str:
        return "string"

    def convert(self, value: Any, path: str) -> Any:
        text = str(value)
        if self.enum is not None and text not in self.enum:
            options = ", ".join(self.enum[:-1]) + " or " + self.enum[-1]
            if len(self.enum) == 1:
                options = self.enum[0]
            raise invalid(f"Invalid {path}: must be one of {options}", param=path)
        if len(text) > self.max_len:
            raise invalid(
                f"Invalid string: {_preview(text)}; must be at most {self.max_len} characters",
                param=path,
            )
        return text


@dataclass(frozen=True)
class Int(Spec):
    min: int | None = None
    max: int | None = None
    nullable: bool = False

    def kind(self) -> str:
        return "integer"

    def convert(self, value: Any, path: str) -> Any:
        text = str(value)
        if not _INT.match(text):
            raise invalid(f"Invalid integer: {text}", param=path, code="parameter_invalid_integer")
        number = int(text)
        if self.min is not None and number < self.min:
            raise invalid(f"This value must be greater than or equal to {self.min}.", param=path)
        if self.max is not None and number > self.max:
            raise invalid(f"This value must be less than or equal to {self.max}.", param=path)
        return number


@dataclass(frozen=True)
class Dec(Spec):
    places: int = 12
    min: Decimal | None = Decimal(0)

    def kind(self) -> str:
        return "decimal"

    def convert(self, value: Any, path: str) -> Any:
        text = str(value)
        if not _DEC.match(text):
            raise invalid(f"Invalid decimal: {text}", param=path)
        _, _, fraction = text.partition(".")
        if len(fraction) > self.places:
            raise invalid(
                f"Invalid decimal: {text}; must contain at most {self.places} decimal places",
                param=path,
            )
        number = Decimal(text)
        if self.min is not None and number < self.min:
            raise invalid(f"This value must be greater than or equal to {self.min}.", param=path)
        return number


@dataclass(frozen=True)
class Bool(Spec):
    def kind(self) -> str:
        return "boolean"

    def convert(self, value: Any, path: str) -> Any:
        text = str(value)
        if text not in ("true", "false"):
            raise invalid(f"Invalid boolean: {text}", param=path)
        return text == "true"


@dataclass(frozen=True)
class Metadata(Spec):
    """Stripe metadata: 50 keys, key <= 40 chars (no brackets), value <= 500 chars.

    Returns a dict in which ``""`` marks a key to unset, or ``UNSET`` for ``metadata=``.
    """

    nullable: bool = True

    def convert(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise invalid(f"Invalid object: {path} must be a hash of key-value pairs", param=path)
        if len(value) > 50:
            raise invalid(
                f"Metadata can have up to 50 keys, but you passed in {len(value)} keys.",
                param=path,
            )
        out: dict[str, str] = {}
        for key, item in value.items():
            param = _sub(path, key)
            if isinstance(item, dict):
                raise invalid(f"Invalid value for {param}: metadata values must be strings")
            if len(key) > 40:
                raise invalid(
                    f"Metadata keys can have up to 40 characters, but you passed in a key that "
                    f"is {len(key)} characters. Invalid key: {key}",
                    param=param,
                )
            if len(item) > 500:
                raise invalid(
                    f"Metadata values can have up to 500 characters, but you passed in a value "
                    f"that is {len(item)} characters. Invalid value: {_preview(item, 100)}",
                    param=param,
                )
            out[key] = item
        return out


def merge_metadata(current: dict[str, str], update: Any, param: str) -> dict[str, str]:
    """Apply a checked metadata update: ``""`` unsets a key, ``UNSET`` clears everything."""
    if update is UNSET:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > 50:
        raise invalid(
            f"Metadata can have up to 50 keys, but the object would have {len(merged)} keys.",
            param=param,
        )
    return merged


@dataclass(frozen=True)
class Obj(Spec):
    fields: dict[str, Spec] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    nullable: bool = False

    def convert(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise invalid(f"Invalid object: {path} must be a hash", param=path)
        for key in value:
            if key not in self.fields:
                name = _sub(path, key)
                raise invalid(
                    f"Received unknown parameter: {name}", param=name, code="parameter_unknown"
                )
        for key in self.required:
            if key not in value:
                name = _sub(path, key)
                raise invalid(
                    f"Missing required param: {name}.", param=name, code="parameter_missing"
                )
        return {key: self.fields[key].check(item, _sub(path, key)) for key, item in value.items()}


@dataclass(frozen=True)
class Arr(Spec):
    item: Spec = field(default_factory=Loose)
    max_items: int | None = None
    nullable: bool = False

    def convert(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict) or not all(k.isdigit() for k in value):
            raise invalid(f"Invalid array: {path} must be an array", param=path)
        items = [value[k] for k in sorted(value, key=int)]
        if self.max_items is not None and len(items) > self.max_items:
            raise invalid(
                f"Invalid array: {path} must have at most {self.max_items} elements, "
                f"but {len(items)} were given",
                param=path,
            )
        return [self.item.check(item, f"{path}[{i}]") for i, item in enumerate(items)]


def check_params(spec: Obj, params: dict[str, Any]) -> dict[str, Any]:
    """Validate a whole request's decoded parameters against its endpoint schema."""
    checked: dict[str, Any] = spec.convert(params, "")
    return checked


EXPAND = Arr(Str())
PERIOD = Obj({"start": Int(min=0), "end": Int(min=0)}, required=("start", "end"))
