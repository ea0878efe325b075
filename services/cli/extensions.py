"""Subcommands contributed by the services beyond the router.

Each entry is a `register(subparsers)` function; a module that is not importable (an
optional dependency missing) is skipped so the rest of the CLI keeps working. Destinations
are not listed: each registers its subcommands from its own package
(`services/<name>_sink/plugin.py`, shared/sinks/registry.py)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

_MODULES = [
    "services.cli.credentials",
    "services.control.cli",
    "services.monitor.cli",
    "services.replay.cli",
]


def _load() -> list[Callable[[Any], None]]:
    out = []
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that service is not part of this build
            raise
        out.append(module.register)
    from shared.sinks.registry import cli_registers

    out.extend(cli_registers())
    return out


REGISTERS = _load()
