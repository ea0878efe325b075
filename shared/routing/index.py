"""RouteIndex: the configurations, arranged so a bill only evaluates the ones that can
want it. Allow-listed configurations are looked up by account id; disabled ones are
counted, never evaluated. Rebuilt whenever a configuration changes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from shared.contracts import Trigger
from shared.routing.router import Match, RoutingResult
from shared.routing.rules import CompiledRoute, FilterReason, decide_account, decide_approval

CACHE_LIMIT = 200_000


class RouteIndex:
    def __init__(self, routes: Iterable[CompiledRoute] = ()) -> None:
        ordered = sorted(routes, key=lambda r: r.config.id)
        self.size = len(ordered)
        self.disabled = sum(1 for r in ordered if not r.config.enabled)
        enabled = [r for r in ordered if r.config.enabled]
        self.open = [r for r in enabled if not r.allow]
        self.allow_listed = len(enabled) - len(self.open)
        self.by_account: dict[str, list[CompiledRoute]] = {}
        for route in enabled:
            for account_id in route.allow:
                self.by_account.setdefault(account_id, []).append(route)
        # account id -> (the account view it was computed for, passing routes, filtered)
        self._cache: dict[str, tuple[object, list[CompiledRoute], Counter[FilterReason]]] = {}
        # (account id, trigger, approved source) -> (account view, whole result), for
        # routing without a replay's selection: a regenerated bill's answer is a lookup.
        self._results: dict[tuple[str, Trigger, bool], tuple[object, RoutingResult]] = {}

    def account_routes(
        self, account_id: str, account_view: dict[str, Any]
    ) -> tuple[list[CompiledRoute], Counter[FilterReason]]:
        """Lists and filter for one account snapshot. Cached while the caller passes the
        same view object (the router keeps one per accounts-table record), so regenerated
        bills of an account skip re-evaluating every expression."""
        cached = self._cache.get(account_id)
        if cached is not None and cached[0] is account_view:
            return cached[1], cached[2]
        filtered: Counter[FilterReason] = Counter()
        allowed = self.by_account.get(account_id, [])
        if self.allow_listed - len(allowed):
            filtered[FilterReason.NOT_IN_ALLOW_LIST] += self.allow_listed - len(allowed)
        passing = []
        for route in (*allowed, *self.open):
            reason = decide_account(route, account_id, account_view)
            if reason is None:
                passing.append(route)
            else:
                filtered[reason] += 1
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[account_id] = (account_view, passing, filtered)
        return passing, filtered

    def route(
        self,
        account_id: str,
        account_view: dict[str, Any],
        trigger: Trigger,
        approved_source: bool,
        only_config_ids: frozenset[str] | None = None,
    ) -> RoutingResult:
        """Same decisions as route_bill over every configuration (see rules.decide).

        The result may be shared between calls with the same account snapshot: read it,
        never change it."""
        if only_config_ids is None:
            key = (account_id, trigger, approved_source)
            cached = self._results.get(key)
            if cached is not None and cached[0] is account_view:
                return cached[1]
            result = self._route(account_id, account_view, trigger, approved_source, None)
            if len(self._results) >= CACHE_LIMIT:
                self._results.clear()
            self._results[key] = (account_view, result)
            return result
        return self._route(account_id, account_view, trigger, approved_source, only_config_ids)

    def _route(
        self,
        account_id: str,
        account_view: dict[str, Any],
        trigger: Trigger,
        approved_source: bool,
        only_config_ids: frozenset[str] | None,
    ) -> RoutingResult:
        result = RoutingResult()
        if self.disabled:
            result.filtered[FilterReason.CONFIG_DISABLED] += self.disabled
        passing, filtered = self.account_routes(account_id, account_view)
        result.filtered.update(filtered)
        for route in passing:
            if only_config_ids is not None and route.config.id not in only_config_ids:
                result.filtered[FilterReason.REPLAY_NOT_SELECTED] += 1
                continue
            reason = decide_approval(route, trigger, approved_source)
            if reason is None:
                result.matches.append(Match(route))
            else:
                result.filtered[reason] += 1
        return result
