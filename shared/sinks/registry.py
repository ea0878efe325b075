"""What a destination contributes to the shared parts, registered from its own package, so
adding a destination touches no shared module.

A destination package `services/<name>_sink/` has a `plugin.py` that calls `register`
with its `DestinationPlugin`: provider error codes for the one classifier
(shared/sinks/classify.py), its OAuth provider details, its CLI subcommands and its money
limits. `plugins()` discovers every `services/*_sink/plugin.py` on first use; nothing here
names a provider."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.sinks.oauth import OAuthFlow

CliRegister = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


@dataclass(frozen=True)
class OAuthProvider:
    """An OAuth 2 provider a destination connects with (authorization code + refresh)."""

    name: str  # as in `billsync configs oauth CFG --provider NAME`
    authorize_url: str
    token_url: str
    scopes: str = ""
    rotating_refresh_tokens: bool = False  # a new refresh token on every refresh (Xero)
    # The control plane's connect flow (/oauth/<name>/...), when the destination has one.
    flow: OAuthFlow[Any] | None = None


@dataclass(frozen=True)
class MoneyLimits:
    """What the provider accepts per amount, in minor units / major units per currency."""

    max_minor_units: int | None = None  # the largest amount, either sign
    minimum_charge: Mapping[str, Decimal] = field(default_factory=dict)  # major units
    # Minor units every amount in the currency is a multiple of, where not 1.
    amount_step: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DestinationPlugin:
    family: str  # "stripe": the sink's dispatch topic is dispatch.<family>
    rate_limit_codes: frozenset[str] = frozenset()  # provider codes meaning "rate limited"
    auth_codes: frozenset[str] = frozenset()  # provider codes meaning "re-authenticate"
    cli: CliRegister | None = None
    oauth: tuple[OAuthProvider, ...] = ()
    money: MoneyLimits | None = None


_PLUGINS: dict[str, DestinationPlugin] = {}
_discovered = False


def register(plugin: DestinationPlugin) -> None:
    existing = _PLUGINS.get(plugin.family)
    if existing is not None and existing != plugin:
        raise ValueError(f"destination {plugin.family!r} is registered twice, differently")
    _PLUGINS[plugin.family] = plugin


def discover(package: str = "services") -> None:
    """Import every `<package>.<name>_sink.plugin` there is (once)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    root = importlib.util.find_spec(package)
    if root is None or not root.submodule_search_locations:
        return
    for info in pkgutil.iter_modules(root.submodule_search_locations):
        if not info.ispkg or not info.name.endswith("_sink"):
            continue
        name = f"{package}.{info.name}.plugin"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def plugins() -> Mapping[str, DestinationPlugin]:
    discover()
    return MappingProxyType(_PLUGINS)


def rate_limit_codes() -> frozenset[str]:
    return frozenset().union(*(p.rate_limit_codes for p in plugins().values()))


def auth_codes() -> frozenset[str]:
    return frozenset().union(*(p.auth_codes for p in plugins().values()))


def oauth_provider(name: str) -> OAuthProvider | None:
    for plugin in plugins().values():
        for provider in plugin.oauth:
            if provider.name == name:
                return provider
    return None


def oauth_flow(name: str) -> OAuthFlow[Any] | None:
    """The connect flow behind /oauth/<name>/..., or None (unknown, or none registered)."""
    provider = oauth_provider(name)
    return provider.flow if provider else None


def oauth_flows() -> dict[str, OAuthFlow[Any]]:
    return {
        provider.name: provider.flow
        for _, plugin in sorted(plugins().items())
        for provider in plugin.oauth
        if provider.flow is not None
    }


def money_limits(family: str) -> MoneyLimits | None:
    plugin = plugins().get(family)
    return plugin.money if plugin else None


def cli_registers() -> list[CliRegister]:
    return [p.cli for _, p in sorted(plugins().items()) if p.cli is not None]
