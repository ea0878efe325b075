"""Per-configuration routing rules, compiled once per configuration version."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.contracts import Account, IntegrationConfig, Trigger
from shared.filters import AccountFilter, parse_filter


class FilterReason(StrEnum):
    """Why a configuration did not take a bill (a metric label, not an error)."""

    CONFIG_DISABLED = "configuration_disabled"
    DENY_LIST = "deny_list"
    NOT_IN_ALLOW_LIST = "not_in_allow_list"
    FILTER_FALSE = "filter_false"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVAL_NOT_REQUIRED = "approval_not_required"
    REPLAY_NOT_SELECTED = "replay_not_selected"


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    config: IntegrationConfig
    allow: frozenset[str]
    deny: frozenset[str]
    account_filter: AccountFilter | None


def compile_route(config: IntegrationConfig) -> CompiledRoute:
    expression = config.entity_config.account_filter
    return CompiledRoute(
        config=config,
        allow=frozenset(config.account_ids),
        deny=frozenset(config.restricted_account_ids),
        account_filter=parse_filter(expression) if expression else None,
    )


def decide(
    route: CompiledRoute,
    account_id: str,
    account_view: dict[str, Any],
    trigger: Trigger,
    approved_source: bool,
) -> FilterReason | None:
    """None means: send this bill to this configuration.

    `approved_source` says whether the bill came from (or was replayed from) bill-approved.
    With "only send on approval" on, only approved bills go; with it off, every generated
    bill and every regeneration goes and approval events add nothing (the bill already went).
    """
    if not route.config.enabled:
        return FilterReason.CONFIG_DISABLED
    return decide_account(route, account_id, account_view) or decide_approval(
        route, trigger, approved_source
    )


def decide_account(
    route: CompiledRoute, account_id: str, account_view: dict[str, Any]
) -> FilterReason | None:
    """The part that depends only on the account (cacheable per account snapshot)."""
    if account_id in route.deny:
        return FilterReason.DENY_LIST
    if route.allow and account_id not in route.allow:
        return FilterReason.NOT_IN_ALLOW_LIST
    if route.account_filter is not None and not route.account_filter.matches(account_view):
        return FilterReason.FILTER_FALSE
    return None


def decide_approval(
    route: CompiledRoute, trigger: Trigger, approved_source: bool
) -> FilterReason | None:
    if route.config.entity_config.only_send_bill_on_approval:
        return None if approved_source else FilterReason.AWAITING_APPROVAL
    return FilterReason.APPROVAL_NOT_REQUIRED if trigger is Trigger.APPROVED else None


def account_view(account: Account) -> dict[str, Any]:
    """The mapping the filter language evaluates: wire names, values as published."""
    return account.model_dump(mode="python", by_alias=True)
