"""Fault-injection pieces the fakes share where they behave the same: taking the next
matching "fail the next N requests" rule (Stripe, Paddle) and dropping a connection
unanswered (Stripe, Paddle, Xero). Each fake keeps its own rule pruning, stats and error
bodies, which differ."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from aiohttp import web


class Rule(Protocol):
    path_prefix: str
    method: str | None
    count: int


R = TypeVar("R", bound=Rule)


def take_rule(rules: Iterable[R], method: str, path: str) -> R | None:
    """The first rule with requests left whose method (None: any) and path prefix match,
    with one of its requests used up; None when no rule applies."""
    for rule in rules:
        if rule.count > 0 and path.startswith(rule.path_prefix) and rule.method in (None, method):
            rule.count -= 1
            return rule
    return None


def drop_connection(request: web.Request) -> web.Response:
    """Close the client's connection without an answer (a request lost on the way back)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)  # never reaches the client
