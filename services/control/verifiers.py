"""Credential verifiers: one cheap authenticated call per destination family, made when a
configuration is connected, so CONNECTED means the key works in the right mode.

A destination contributes its verifier in `services/<family>_sink/verify.py`, which calls
`register(family, verifier)` when imported; the registry imports that module the first
time the family is needed. Nothing here, and no shared module, names a provider."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.contracts import Destination
from shared.credentials import Credential


@dataclass(frozen=True)
class Verification:
    """`ok`, or why not in words for the operator (never the provider's own text: it can
    quote part of the key). `retriable`: the provider could not be asked (network, 5xx,
    rate limit): nothing is known about the key."""

    ok: bool
    reason: str | None = None
    retriable: bool = False


Verifier = Callable[[Credential, Destination], Awaitable[Verification]]
_VERIFIERS: dict[str, Verifier] = {}
_LOOKED_FOR: set[str] = set()


def register(family: str, verifier: Verifier) -> None:
    _VERIFIERS[family] = verifier


def verifier_for(destination: Destination) -> Verifier | None:
    family = destination.family
    if family not in _VERIFIERS and family not in _LOOKED_FOR:
        _LOOKED_FOR.add(family)
        module = f"services.{family}_sink.verify"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not (exc.name and module.startswith(exc.name)):
                raise  # the module exists but one of its imports is missing: a real bug
    return _VERIFIERS.get(family)
