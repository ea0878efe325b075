"""route_bill: one bill against every configuration, no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.contracts import Account, Bill, Trigger
from shared.routing.rules import CompiledRoute, FilterReason, account_view, decide


@dataclass(frozen=True, slots=True)
class Match:
    route: CompiledRoute


@dataclass(slots=True)
class RoutingResult:
    matches: list[Match] = field(default_factory=list)
    filtered: Counter[FilterReason] = field(default_factory=Counter)


def route_bill(
    bill: Bill,
    account: Account,
    trigger: Trigger,
    routes: Iterable[CompiledRoute],
    approved_source: bool | None = None,
    only_config_ids: frozenset[str] | None = None,
) -> RoutingResult:
    """Decide, for each configuration, whether it takes the bill.

    `only_config_ids` narrows a replay to chosen configurations.
    """
    if approved_source is None:
        approved_source = trigger is Trigger.APPROVED
    view = account_view(account)
    result = RoutingResult()
    for route in routes:
        if only_config_ids is not None and route.config.id not in only_config_ids:
            result.filtered[FilterReason.REPLAY_NOT_SELECTED] += 1
            continue
        reason = decide(route, bill.account_id, view, trigger, approved_source)
        if reason is None:
            result.matches.append(Match(route))
        else:
            result.filtered[reason] += 1
    return result
