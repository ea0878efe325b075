"""The request pipeline of the local Paddle.

Order: authentication (a key works only in its own environment), the per-IP limit (240
a minute for every key together; going over answers 429 with Retry-After and blocks the
IP for 60 s), latency, the body against Paddle's OpenAPI document, injected faults, then
the endpoint with the rules the document cannot say (transactions.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import operator
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from fakes.common.faults import drop_connection, take_rule

from . import spec, transactions
from .config import KEY_PREFIXES, FakePaddleConfig, apply_patch
from .errors import PaddleError, invalid, not_found
from .state import JSON, Store, new_id

log = logging.getLogger(__name__)

Handler = Callable[["Call"], JSON | list[JSON]]


@dataclass
class Call:
    store: Store
    match: dict[str, str]
    body: Any
    query: dict[str, str]


@dataclass
class Stats:
    requests: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    dropped_after_commit: int = 0
    dropped_before_commit: int = 0
    max_in_window: int = 0  # most requests admitted within one limit window
    paddle_versions: dict[str, int] = field(default_factory=dict)  # Paddle-Version headers
    first_admitted_at: float | None = None  # monotonic seconds
    last_admitted_at: float | None = None

    def to_json(self) -> JSON:
        return dict(self.__dict__)


class IpLimiter:
    """A sliding window of admitted request times per client IP, and the block after a
    429."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self.monotonic = monotonic
        self.times: dict[str, deque[float]] = {}
        self.blocked_until: dict[str, float] = {}

    def reset(self) -> None:
        self.times.clear()
        self.blocked_until.clear()

    def admit(self, config: FakePaddleConfig, ip: str, stats: Stats) -> None:
        limits = config.rate_limits
        if not limits.enabled:
            return
        now = self.monotonic()
        until = self.blocked_until.get(ip, 0.0)
        if until > now:
            raise _too_many(until - now)
        window = self.times.setdefault(ip, deque())
        while window and window[0] <= now - limits.window_seconds:
            window.popleft()
        if len(window) >= limits.per_window:
            self.blocked_until[ip] = now + limits.block_seconds
            raise _too_many(limits.block_seconds)
        window.append(now)
        stats.max_in_window = max(stats.max_in_window, len(window))


def _too_many(seconds: float) -> PaddleError:
    wait = max(1, int(seconds + 0.999))
    return PaddleError(
        429,
        "too_many_requests",
        "IP address exceeded the allowed rate limit. Retry after the number of seconds in "
        "the Retry-After header.",
        headers={"Retry-After": str(wait)},
    )


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    schema: str | None = None  # the request body's schema in the OpenAPI document
    paginated: bool = False


class Core:
    def __init__(
        self, config: FakePaddleConfig, clock: Callable[[], float], monotonic: Callable[[], float]
    ) -> None:
        self.config = config
        self.store = Store(clock)
        self.limiter = IpLimiter(monotonic)
        self.stats = Stats()

    def reset(self) -> None:
        self.store.reset()
        self.limiter.reset()
        self.stats = Stats()

    def configure(self, patch: dict[str, Any]) -> None:
        apply_patch(self.config, patch)

    def _auth(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        if not header:
            raise PaddleError(
                401, "authentication_missing", "Authentication header missing or incorrect."
            )
        if not header.startswith("Bearer "):
            raise PaddleError(401, "authentication_malformed", "Authentication header malformed.")
        key = header[len("Bearer ") :].strip()
        own = KEY_PREFIXES[self.config.environment]
        other = next(p for e, p in KEY_PREFIXES.items() if e != self.config.environment)
        if key.startswith(other):
            raise PaddleError(
                403,
                "forbidden",
                f"You aren't permitted to perform this request: this API key belongs to "
                f"another environment than {self.config.environment}.",
            )
        if not key.startswith(own) or key not in self.config.api_keys:
            raise PaddleError(403, "forbidden", "You aren't permitted to perform this request.")

    async def handle(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        request_id = new_id("req")[4:]
        name = f"{endpoint.method} {endpoint.path}"
        self.stats.requests += 1
        self.stats.by_endpoint[name] = self.stats.by_endpoint.get(name, 0) + 1
        try:
            return await self._handle(request, endpoint, request_id, name)
        except PaddleError as exc:
            if exc.status == 429:
                self.stats.rate_limited += 1
            return self._respond(exc.status, exc.body(request_id), exc.headers)

    def _respond(
        self, status: int, body: JSON, headers: dict[str, str] | None = None
    ) -> web.Response:
        self.stats.statuses[str(status)] = self.stats.statuses.get(str(status), 0) + 1
        return web.json_response(body, status=status, headers=headers)

    def _drop(self, request: web.Request, after_commit: bool) -> web.Response:
        if after_commit:
            self.stats.dropped_after_commit += 1
        else:
            self.stats.dropped_before_commit += 1
        return drop_connection(request)

    async def _handle(
        self, request: web.Request, endpoint: Endpoint, request_id: str, name: str
    ) -> web.StreamResponse:
        self._auth(request)
        version = request.headers.get("Paddle-Version", "(none)")
        self.stats.paddle_versions[version] = self.stats.paddle_versions.get(version, 0) + 1
        if version not in ("1", "(none)"):  # version 1 is the only one (none means 1)
            raise PaddleError(
                400,
                "invalid_field",
                f"Paddle-Version {version} is not supported.",
                errors=[("Paddle-Version", "must be 1")],
            )
        self.limiter.admit(self.config, request.remote or "unknown", self.stats)
        now = self.limiter.monotonic()
        if self.stats.first_admitted_at is None:
            self.stats.first_admitted_at = now
        self.stats.last_admitted_at = now
        if self.config.faults.latency_ms > 0:
            await asyncio.sleep(self.config.faults.latency_ms / 1000)
        body: Any = None
        if endpoint.schema is not None:
            try:
                body = json.loads(await request.text() or "null")
            except json.JSONDecodeError as exc:
                raise PaddleError(400, "bad_request", f"Invalid JSON body: {exc.msg}.") from exc
            if not isinstance(body, dict):
                raise invalid([("(body)", "the body must be a JSON object")])
            problems = spec.check(endpoint.schema, body)
            if problems:
                raise invalid(problems)
        rule = take_rule(self.config.faults.rules, request.method, request.path)
        if rule is not None and rule.action == "drop_before_commit":
            return self._drop(request, after_commit=False)
        if rule is not None and rule.action == "status":
            if rule.status == 429:
                raise _too_many(1)
            raise PaddleError(
                rule.status,
                "internal_error" if rule.status >= 500 else "injected_error",
                f"Injected failure with status {rule.status}.",
            )
        call = Call(self.store, dict(request.match_info), body, dict(request.query))
        try:
            result = endpoint.handler(call)
        except PaddleError:
            raise
        except Exception as exc:  # a bug in the fake surfaces as a 500, not a hang
            log.exception("local paddle: %s failed", name)
            raise PaddleError(500, "internal_error", "An internal error occurred.") from exc
        if rule is not None and rule.action == "drop_after_commit":
            return self._drop(request, after_commit=True)
        if isinstance(result, list):
            return self._respond(200, self._page(request, call, result, request_id))
        return self._respond(
            200 if request.method != "POST" else 201,
            {
                "data": result,
                "meta": {"request_id": request_id},
            },
        )

    def _page(self, request: web.Request, call: Call, rows: list[JSON], request_id: str) -> JSON:
        """Cursor pagination: `after` is the last id of the previous page."""
        try:
            per_page = int(call.query.get("per_page", self.config.per_page_max))
        except ValueError as exc:
            raise invalid([("per_page", "must be an integer")]) from exc
        if not 1 <= per_page <= self.config.per_page_max:
            raise invalid([("per_page", f"must be between 1 and {self.config.per_page_max}")])
        total = len(rows)
        after = call.query.get("after")
        if after:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        page, more = rows[:per_page], len(rows) > per_page
        next_url = None
        if page:
            query = {**call.query, "after": page[-1]["id"]}
            next_url = str(request.url.with_query(query))
        return {
            "data": page,
            "meta": {
                "request_id": request_id,
                "pagination": {
                    "per_page": per_page,
                    "next": next_url,
                    "has_more": more,
                    "estimated_total": total,
                },
            },
        }


# ---- endpoints -------------------------------------------------------------------------


def _customer(call: Call) -> JSON:
    customer = call.store.customers.get(call.match["customer_id"])
    if customer is None:
        raise not_found("Customer", call.match["customer_id"])
    return customer


def create_customer(call: Call) -> JSON:
    body = call.body
    if any(c["email"] == body["email"] for c in call.store.customers.values()):
        raise PaddleError(
            409, "customer_already_exists", f"customer email conflicts with {body['email']}"
        )
    now = call.store.timestamp()
    customer: JSON = {
        "id": new_id("ctm"),
        "name": body.get("name"),
        "email": body["email"],
        "marketing_consent": False,
        "status": "active",
        "custom_data": body.get("custom_data"),
        "locale": body.get("locale", "en"),
        "created_at": now,
        "updated_at": now,
        "import_meta": None,
    }
    call.store.customers[customer["id"]] = customer
    return customer


def get_customer(call: Call) -> JSON:
    return _customer(call)


def create_address(call: Call) -> JSON:
    customer = _customer(call)
    now = call.store.timestamp()
    body = call.body
    address: JSON = {
        "id": new_id("add"),
        "customer_id": customer["id"],
        "description": body.get("description"),
        "first_line": body.get("first_line"),
        "second_line": body.get("second_line"),
        "city": body.get("city"),
        "postal_code": body.get("postal_code"),
        "region": body.get("region"),
        "country_code": body["country_code"],
        "custom_data": body.get("custom_data"),
        "status": "active",
        "created_at": now,
        "updated_at": now,
        "import_meta": None,
    }
    call.store.addresses[address["id"]] = address
    return address


def list_addresses(call: Call) -> list[JSON]:
    customer = _customer(call)
    return [a for a in call.store.addresses.values() if a["customer_id"] == customer["id"]]


def create_business(call: Call) -> JSON:
    customer = _customer(call)
    now = call.store.timestamp()
    body = call.body
    business: JSON = {
        "id": new_id("biz"),
        "customer_id": customer["id"],
        "name": body["name"],
        "company_number": body.get("company_number"),
        "tax_identifier": body.get("tax_identifier"),
        "status": "active",
        "contacts": body.get("contacts", []),
        "custom_data": body.get("custom_data"),
        "created_at": now,
        "updated_at": now,
        "import_meta": None,
    }
    call.store.businesses[business["id"]] = business
    return business


def create_transaction(call: Call) -> JSON:
    return transactions.create(call.store, call.body)


def get_transaction(call: Call) -> JSON:
    return transactions.get(call.store, call.match["transaction_id"])


def update_transaction(call: Call) -> JSON:
    return transactions.update(call.store, call.match["transaction_id"], call.body)


_ORDER_FIELDS = ("billed_at", "created_at", "id", "updated_at")


def _instant(text: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise invalid([(field, f"{text} is not an RFC 3339 date-time")]) from exc
    if moment.tzinfo is None:
        raise invalid([(field, f"{text} has no time zone")])
    return moment


def list_transactions(call: Call) -> list[JSON]:
    """Filters: customer_id, status, id (comma-separated), created_at[LT|LTE|GT|GTE];
    order_by `field[ASC|DESC]`. There is no filter on custom_data (as at Paddle)."""
    q = call.query
    rows = list(call.store.transactions.values())
    for name in ("customer_id", "status", "id"):
        if q.get(name):
            wanted = set(q[name].split(","))
            rows = [r for r in rows if r[name] in wanted]
    tests: dict[str, Callable[[datetime, datetime], bool]] = {
        "LT": operator.lt,
        "LTE": operator.le,
        "GT": operator.gt,
        "GTE": operator.ge,
    }
    for op, test in tests.items():
        text = q.get(f"created_at[{op}]")
        if text:
            bound = _instant(text, f"created_at[{op}]")
            rows = [r for r in rows if test(_instant(r["created_at"], "created_at"), bound)]
    order = q.get("order_by", "id[ASC]")
    field_name, _, direction = order.partition("[")
    direction = direction.rstrip("]").upper()
    if field_name not in _ORDER_FIELDS or direction not in ("ASC", "DESC"):
        raise invalid([("order_by", f"invalid order_by {order}")])
    rows.sort(key=lambda r: (r[field_name] or "", r["created_at"]), reverse=direction == "DESC")
    return [transactions.render(r) for r in rows]


ENDPOINTS = [
    Endpoint("POST", "/customers", create_customer, "customer-create"),
    Endpoint("GET", "/customers/{customer_id}", get_customer),
    Endpoint("POST", "/customers/{customer_id}/addresses", create_address, "address-create"),
    Endpoint("GET", "/customers/{customer_id}/addresses", list_addresses, paginated=True),
    Endpoint("POST", "/customers/{customer_id}/businesses", create_business, "business-create"),
    Endpoint("POST", "/transactions", create_transaction, "transaction-create"),
    Endpoint("GET", "/transactions", list_transactions, paginated=True),
    Endpoint("GET", "/transactions/{transaction_id}", get_transaction),
    Endpoint("PATCH", "/transactions/{transaction_id}", update_transaction, "transaction-update"),
]


def route(core: Core, endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await core.handle(request, endpoint)

    return handler
