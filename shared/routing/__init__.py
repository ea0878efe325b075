"""Pure routing: which configurations want a bill, and the bill each of them gets."""

from shared.routing.index import RouteIndex
from shared.routing.prepare import prepare_bill
from shared.routing.router import Match, RoutingResult, route_bill
from shared.routing.rules import CompiledRoute, FilterReason, compile_route, decide

__all__ = [
    "CompiledRoute",
    "FilterReason",
    "Match",
    "RouteIndex",
    "RoutingResult",
    "compile_route",
    "decide",
    "prepare_bill",
    "route_bill",
]
