"""What an endpoint handler sees, the endpoint record, and shared lookups/pagination."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import FakeStripeConfig
from .errors import StripeError, invalid
from .objects import list_object
from .state import JSON, Namespace, Store
from .validation import Obj


@dataclass
class Ctx:
    store: Store
    ns: Namespace
    config: FakeStripeConfig
    match: dict[str, str]
    request_id: str
    idempotency_key: str | None = None
    events: list[tuple[str, JSON]] = field(default_factory=list)

    @property
    def now(self) -> int:
        return self.store.now()

    def emit(self, event_type: str, obj: JSON) -> None:
        """Queue an event; it is recorded and sent only once the request commits."""
        self.events.append((event_type, obj))

    def lookup(self, kind: str, ident: str, *, param: str, status: int) -> JSON:
        table: dict[str, JSON] = getattr(self.ns, kind)
        found = table.get(ident)
        if found is not None:
            return found
        label = {"customers": "customer", "invoices": "invoice", "invoice_items": "invoiceitem"}
        message = f"No such {label[kind]}: '{ident}'"
        if self.store.other_mode_has(self.ns.livemode, self.ns.account, kind, ident):
            mine, other = ("live", "test") if self.ns.livemode else ("test", "live")
            message += (
                f"; a similar object exists in {other} mode, but a {mine} mode key was used "
                "to make this request."
            )
        raise StripeError(status, message, code="resource_missing", param=param)


Handler = Callable[[Ctx, dict[str, Any]], JSON]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    params: Obj
    handler: Handler

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


def paginate(url: str, objects: list[JSON], params: dict[str, Any]) -> JSON:
    """Stripe list pagination over objects already sorted newest first."""
    limit: int = params.get("limit", 10)
    after = params.get("starting_after")
    before = params.get("ending_before")
    if after and before:
        raise invalid(
            "You may only specify one of these parameters: ending_before, starting_after.",
            code="parameters_exclusive",
        )
    ids = [o["id"] for o in objects]
    if after:
        if after not in ids:
            raise StripeError(
                400, f"No such object: '{after}'", code="resource_missing", param="starting_after"
            )
        start = ids.index(after) + 1
        page = objects[start : start + limit]
        return list_object(url, page, start + limit < len(objects))
    if before:
        if before not in ids:
            raise StripeError(
                400, f"No such object: '{before}'", code="resource_missing", param="ending_before"
            )
        end = ids.index(before)
        page = objects[max(0, end - limit) : end]
        return list_object(url, page, end - limit > 0)
    return list_object(url, objects[:limit], len(objects) > limit)
