"""`FakeBatching`: the provider, served by aiohttp.

API (JSON, `Authorization: Bearer <access token>`, `Tenant-Id: <tenant>`):
- `POST /v1/invoices/batch` `{"invoices": [{reference, customer, currency, total, lines}]}`
  -> 200 `{"results": [{reference, id, status: created|updated} | {reference, errors}]}`,
  in request order; more than `max_batch` invoices is a 400 for the whole call;
- `GET /v1/invoices?references=a,b` -> `{"invoices": [...]}` (look-up by our reference);
- `POST /v1/invoices/{id}/finalize` (what an operator does: the invoice is then locked);
- `POST /oauth/token` (form, HTTP basic client auth, `grant_type=refresh_token`).
Every API answer carries `X-MinLimit-Remaining` and `X-DayLimit-Remaining`; a call over
a limit is a 429 with `Retry-After` and `X-Rate-Limit-Problem` (minute, concurrent, day).
Control: `GET /_fake/state`, `fake.inject(...)`, `fake.stats`."""

from __future__ import annotations

import asyncio
import base64
import collections
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from fakes.common.serve import ServedApp


@dataclass
class FakeBatchingConfig:
    window_calls: int = 60
    window_seconds: float = 60.0
    concurrent: int = 5
    daily: int = 5000
    max_batch: int = 50
    latency: float = 0.0  # seconds each API call takes
    access_ttl: int = 1800
    refresh_grace: float = 1800.0  # the used refresh token stays valid this long
    static_tokens: list[str] = field(default_factory=lambda: ["tok-test"])
    clients: dict[str, str] = field(default_factory=lambda: {"client-1": "secret-1"})


@dataclass
class _Tenant:
    window: collections.deque[float] = field(default_factory=collections.deque)
    active: int = 0
    today: int = 0


class FakeBatching(ServedApp):
    def __init__(self, **config: Any) -> None:
        self.config = FakeBatchingConfig(**config)
        self.invoices: dict[str, dict[str, Any]] = {}  # by id
        self._by_ref: dict[tuple[str, str], str] = {}  # (tenant, reference) -> id
        self._tenants: dict[str, _Tenant] = collections.defaultdict(_Tenant)
        self.access_tokens: dict[str, float] = {t: float("inf") for t in self.config.static_tokens}
        self.refresh_tokens: dict[str, float] = {}  # token -> valid until (monotonic)
        self.faults: list[dict[str, Any]] = []
        self.stats: dict[str, Any] = {}
        self.reset_stats()
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post("/v1/invoices/batch", self._batch),
                web.get("/v1/invoices", self._lookup),
                web.post("/v1/invoices/{id}/finalize", self._finalize),
                web.post("/oauth/token", self._token),
                web.get("/_fake/state", self._state),
            ]
        )
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    # ---- control ------------------------------------------------------------------------

    def reset_stats(self) -> None:
        self.stats = {
            "requests": 0,
            "admitted": 0,
            "rate_limited": 0,
            "items": 0,
            "admitted_at": [],  # monotonic times of admitted API calls
            "max_concurrent": 0,
            "batches": [],  # per admitted batch call: {"tenant", "references"}
        }

    def reset(self) -> None:
        self.invoices.clear()
        self._by_ref.clear()
        self._tenants.clear()
        self.faults.clear()
        self.reset_stats()

    def inject(
        self,
        *,
        status: int | None = None,
        action: str | None = None,
        count: int = 1,
        retry_after: float = 1.0,
    ) -> None:
        """The next `count` batch calls: answer `status` (500, 429, 401), or
        `action="drop_after_commit"` (commit, then drop the connection)."""
        self.faults.append(
            {"status": status, "action": action, "count": count, "retry_after": retry_after}
        )

    def issue_refresh_token(self) -> str:
        token = "rt-" + secrets.token_hex(8)
        self.refresh_tokens[token] = float("inf")
        return token

    def for_reference(self, reference: str, tenant: str = "tenant-1") -> dict[str, Any] | None:
        ident = self._by_ref.get((tenant, reference))
        return self.invoices.get(ident) if ident else None

    # ---- limits -------------------------------------------------------------------------

    def _headers(self, tenant: _Tenant) -> dict[str, str]:
        c = self.config
        return {
            "X-MinLimit-Remaining": str(max(0, c.window_calls - len(tenant.window))),
            "X-DayLimit-Remaining": str(max(0, c.daily - tenant.today)),
        }

    def _admit(self, tenant_id: str) -> tuple[_Tenant, web.Response | None]:
        c, now = self.config, time.monotonic()
        tenant = self._tenants[tenant_id]
        while tenant.window and tenant.window[0] <= now - c.window_seconds:
            tenant.window.popleft()
        self.stats["requests"] += 1
        problem, retry = None, 1.0
        if tenant.today >= c.daily:
            problem, retry = "day", 3600.0
        elif len(tenant.window) >= c.window_calls:
            problem = "minute"
            retry = max(0.001, tenant.window[0] + c.window_seconds - now)
        elif tenant.active >= c.concurrent:
            problem = "concurrent"
        if problem is not None:
            self.stats["rate_limited"] += 1
            headers = {
                **self._headers(tenant),
                "Retry-After": f"{retry:.3f}",
                "X-Rate-Limit-Problem": problem,
            }
            return tenant, _error(429, "rate_limited", f"{problem} limit reached", headers)
        tenant.window.append(now)
        tenant.today += 1
        tenant.active += 1
        self.stats["admitted"] += 1
        self.stats["admitted_at"].append(now)
        self.stats["max_concurrent"] = max(self.stats["max_concurrent"], tenant.active)
        return tenant, None

    def _authorised(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        return self.access_tokens.get(token, 0.0) > time.monotonic()

    # ---- API ----------------------------------------------------------------------------

    async def _api(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self._authorised(request):
            return _error(401, "unauthorized", "the access token is not valid")
        tenant_id = request.headers.get("Tenant-Id", "")
        if not tenant_id:
            return _error(400, "tenant_required", "send a Tenant-Id header")
        tenant, refused = self._admit(tenant_id)
        if refused is not None:
            return refused
        try:
            if self.config.latency:
                await asyncio.sleep(self.config.latency)
            response: web.StreamResponse = await handler(request, tenant_id)
        finally:
            tenant.active -= 1
        response.headers.update(self._headers(tenant))
        return response

    def _take_fault(self) -> dict[str, Any] | None:
        if not self.faults:
            return None
        fault = self.faults[0]
        fault["count"] -= 1
        if fault["count"] <= 0:
            self.faults.pop(0)
        return fault

    async def _batch(self, request: web.Request) -> web.StreamResponse:
        return await self._api(request, self._do_batch)

    async def _do_batch(self, request: web.Request, tenant: str) -> web.StreamResponse:
        fault = self._take_fault()
        if fault and fault["status"]:
            headers = {"Retry-After": str(fault["retry_after"])} if fault["status"] == 429 else {}
            return _error(fault["status"], "injected", "injected failure", headers)
        body = await request.json()
        items = body.get("invoices") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return _error(400, "invalid_request", "invoices must be a non-empty list")
        if len(items) > self.config.max_batch:
            return _error(400, "batch_too_large", f"at most {self.config.max_batch} invoices")
        self.stats["items"] += len(items)
        self.stats["batches"].append(
            {
                "tenant": tenant,
                "references": [i.get("reference") for i in items if isinstance(i, dict)],
            }
        )
        results = [self._upsert(tenant, item) for item in items]
        if fault and fault["action"] == "drop_after_commit":
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise ConnectionResetError("dropped after commit")
        return web.json_response({"results": results})

    def _upsert(self, tenant: str, item: Any) -> dict[str, Any]:
        reference = item.get("reference") if isinstance(item, dict) else None
        if not isinstance(reference, str) or not reference:
            return {"reference": reference, "errors": [{"message": "reference is required"}]}
        errors = _validate(item)
        if errors:
            return {"reference": reference, "errors": [{"message": e} for e in errors]}
        ident = self._by_ref.get((tenant, reference))
        if ident is not None and self.invoices[ident]["status"] != "DRAFT":
            return {
                "reference": reference,
                "id": ident,
                "errors": [
                    {"message": "the invoice is finalized and cannot be changed", "code": "locked"}
                ],
            }
        status = "updated" if ident else "created"
        ident = ident or "inv_" + secrets.token_hex(6)
        self._by_ref[(tenant, reference)] = ident
        self.invoices[ident] = {
            "id": ident,
            "tenant": tenant,
            "reference": reference,
            "customer": item.get("customer"),
            "currency": item["currency"],
            "total": item["total"],
            "lines": item.get("lines", []),
            "status": "DRAFT",
        }
        return {"reference": reference, "id": ident, "status": status}

    async def _lookup(self, request: web.Request) -> web.StreamResponse:
        return await self._api(request, self._do_lookup)

    async def _do_lookup(self, request: web.Request, tenant: str) -> web.StreamResponse:
        refs = [r for r in request.query.get("references", "").split(",") if r]
        found = [self.for_reference(r, tenant) for r in refs]
        return web.json_response({"invoices": [f for f in found if f]})

    async def _finalize(self, request: web.Request) -> web.StreamResponse:
        invoice = self.invoices.get(request.match_info["id"])
        if invoice is None:
            return _error(404, "not_found", "no such invoice")
        invoice["status"] = "FINALIZED"
        return web.json_response(invoice)

    # ---- OAuth --------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.StreamResponse:
        client = _basic_auth(request.headers.get("Authorization", ""))
        if client is None or self.config.clients.get(client[0]) != client[1]:
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        if form.get("grant_type") != "refresh_token":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        used = str(form.get("refresh_token", ""))
        now = time.monotonic()
        if self.refresh_tokens.get(used, 0.0) <= now:
            return web.json_response({"error": "invalid_grant"}, status=400)
        # Rotation: a new refresh token every time; the used one keeps a grace period.
        self.refresh_tokens[used] = min(self.refresh_tokens[used], now + self.config.refresh_grace)
        new_refresh = "rt-" + secrets.token_hex(8)
        self.refresh_tokens[new_refresh] = float("inf")
        access = "at-" + secrets.token_hex(8)
        self.access_tokens[access] = now + self.config.access_ttl
        self.stats.setdefault("refreshes", 0)
        self.stats["refreshes"] += 1
        return web.json_response(
            {
                "access_token": access,
                "refresh_token": new_refresh,
                "expires_in": self.config.access_ttl,
                "token_type": "Bearer",
            }
        )

    async def _state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "invoices": list(self.invoices.values()),
                "stats": {
                    k: v for k, v in self.stats.items() if k not in ("admitted_at", "batches")
                },
            }
        )


def _validate(item: dict[str, Any]) -> list[str]:
    errors = []
    currency = item.get("currency")
    if not isinstance(currency, str) or len(currency) != 3:
        errors.append("currency must be a three-letter code")
    try:
        total = Decimal(str(item.get("total")))
        if total.is_nan() or abs(total) >= Decimal("1000000"):
            errors.append("total must be below 1000000")
    except InvalidOperation:
        errors.append("total must be a decimal number")
    if not item.get("customer"):
        errors.append("customer is required")
    return errors


def _basic_auth(header: str) -> tuple[str, str] | None:
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )
