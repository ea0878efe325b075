"""`FakeXero`: a stateful local Xero (Accounting API + identity), served by aiohttp.

Accounting (`/api.xro/2.0`, `Authorization: Bearer`, `xero-tenant-id`):
- `PUT /Invoices` creates, `POST /Invoices` updates or creates (by InvoiceID, then number),
  `GET /Invoices` (`IDs`, `InvoiceNumbers`, `where=Reference=="..."`, `page`, 100 a page),
  `GET /Invoices/{id}`; the same for `/CreditNotes`; `GET /Contacts`, `/Items`, `/Accounts`.
  Every body is validated against Xero's OpenAPI document (fakes/xero/spec/); with
  `summarizeErrors=false` the answer is always 200 and each element carries `HasErrors`,
  `StatusAttributeString` and `ValidationErrors` (only valid elements are stored); without it
  one refused element makes the whole call a 400 `ValidationException` listing `Elements`
  (nothing stored). A body over 3.5 MB is a 413. `Idempotency-Key` (at most 128 characters):
  the same key with the same request replays the first answer; with another request it is a
  400.
- Limits per tenant: `minute_limit` calls per `window_seconds`, `concurrent` at once,
  `daily` per `day_seconds` (from the tenant's first call of the day), and `app_minute` for
  the whole app; every answer carries `X-MinLimit-Remaining`, `X-DayLimit-Remaining` and
  `X-AppMinLimit-Remaining`; a call over a limit is a 429 with `Retry-After` (seconds) and
  `X-Rate-Limit-Problem` (`minute`, `concurrent`, `day`, `appminute`).

Identity: `GET /identity/connect/authorize` (consents at once: redirects with a code),
`POST /connect/token` (`authorization_code`, `refresh_token`, `client_credentials`; client
authentication by HTTP basic or form fields), `GET /connections`, `DELETE /connections/{id}`.
Access tokens live `access_ttl` seconds. Refresh tokens rotate on every use; the used one
stays valid for `refresh_grace` seconds and, used again, answers the same new refresh token
(so a client that lost the answer half-way still gets in); unused ones expire after
`refresh_ttl`. A custom connection (client credentials) reaches exactly one tenant.

Faults (`inject`): the next N accounting calls matching a method/path answer a status, wait
`latency`, or are committed then dropped (`drop_after_commit`) or dropped unprocessed.
Inspect: `GET /_fake/state`, `GET /_fake/stats`; control: `POST /_fake/seed`,
`POST /_fake/faults`, `POST /_fake/reset`, `POST /_fake/documents/{id}/status` (what an
accountant does: approve, record a payment, void)."""

from __future__ import annotations

import asyncio
import base64
import collections
import copy
import hashlib
import math
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from fakes.common.faults import drop_connection
from fakes.common.serve import ServedApp

from .documents import CREDIT_NOTE, INVOICE, JSON, KINDS, Kind, Organisation
from .wire import dumps, loads

API = "/api.xro/2.0"
PAGE_SIZE = 100
MAX_BODY = 3_500_000
MAX_IDEMPOTENCY_KEY = 128


@dataclass
class FakeXeroConfig:
    minute_limit: int = 60
    window_seconds: float = 60.0
    concurrent: int = 5
    daily: int = 5000
    day_seconds: float = 86400.0
    app_minute: int = 10000
    rate_limits: bool = True
    latency: float = 0.0  # seconds every accounting call takes
    access_ttl: float = 1800.0
    refresh_grace: float = 1800.0
    refresh_ttl: float = 60 * 86400.0
    # OAuth apps: client id -> secret; custom connections: client id -> its one tenant.
    clients: dict[str, str] = field(default_factory=lambda: {"xero-client": "xero-secret"})
    custom_connections: dict[str, str] = field(default_factory=dict)


@dataclass
class _Usage:
    window: collections.deque[float] = field(default_factory=collections.deque)
    active: int = 0
    day_started: float | None = None
    today: int = 0


@dataclass
class _Access:
    client_id: str
    tenants: tuple[str, ...]
    expires: float


@dataclass
class _Refresh:
    client_id: str
    tenants: tuple[str, ...]
    expires: float
    used_at: float | None = None
    successor: str | None = None


@dataclass
class Fault:
    status: int | None = None
    action: str | None = None  # "drop_after_commit" | "drop_before_commit"
    latency: float = 0.0
    count: int = 1
    method: str | None = None
    path: str = ""  # a prefix of the path after /api.xro/2.0
    retry_after: float = 1.0


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=dumps(body), headers=headers, content_type="application/json"
    )


def _problem(status: int, title: str, detail: str) -> web.Response:
    """Xero's answer for authentication and authorisation failures."""
    body = {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
    }
    return _json(status, body)


def validation_exception(message: str, elements: list[JSON] | None = None) -> JSON:
    """Xero's 400 body for a refused request (ErrorNumber 10, ValidationException)."""
    body: JSON = {"ErrorNumber": 10, "Type": "ValidationException", "Message": message}
    if elements is not None:
        body["Elements"] = elements
    return body


class FakeXero(ServedApp):
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, **config: Any) -> None:
        self.config = FakeXeroConfig(**config)
        self.clock = clock
        self.organisations: dict[str, Organisation] = {}
        self.connections: dict[str, dict[str, JSON]] = collections.defaultdict(
            dict
        )  # client -> tenant -> connection
        self.access_tokens: dict[str, _Access] = {}
        self.refresh_tokens: dict[str, _Refresh] = {}
        self.codes: dict[
            str, tuple[str, str, tuple[str, ...]]
        ] = {}  # code -> client, redirect, tenants
        self.faults: list[Fault] = []
        self._usage: dict[str, _Usage] = collections.defaultdict(_Usage)
        self._app_window: collections.deque[float] = collections.deque()
        self._idempotency: dict[tuple[str, str], tuple[str, int, str]] = {}
        self._admitted = asyncio.Event()
        self._writing = asyncio.Lock()
        # Every accounting write as received: method, path, query, tenant, body, headers.
        self.requests: list[JSON] = []
        self.stats: JSON = {}
        self.reset_stats()
        self.app = web.Application(client_max_size=MAX_BODY * 2)
        self.app.add_routes(
            [
                web.put(API + "/{collection:Invoices|CreditNotes}", self._write),
                web.post(API + "/{collection:Invoices|CreditNotes}", self._write),
                web.get(API + "/{collection:Invoices|CreditNotes}", self._list),
                web.get(API + "/{collection:Invoices|CreditNotes}/{id}", self._get_one),
                web.get(API + "/{collection:Contacts|Items|Accounts}", self._catalogue),
                web.get("/identity/connect/authorize", self._authorize),
                web.post("/connect/token", self._token),
                web.get("/connections", self._connections),
                web.delete("/connections/{id}", self._disconnect),
                web.get("/_fake/state", self._state),
                web.get("/_fake/stats", self._stats),
                web.post("/_fake/seed", self._seed),
                web.post("/_fake/faults", self._faults),
                web.post("/_fake/reset", self._reset),
                web.post("/_fake/documents/{id}/status", self._set_status),
            ]
        )
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    # ---- lifecycle (``start``/``stop`` from ServedApp) ------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.url}{API}"

    # ---- seeding and control ------------------------------------------------------------

    def add_organisation(
        self,
        name: str = "Demo Company",
        tenant_id: str | None = None,
        *,
        base_currency: str = "USD",
    ) -> Organisation:
        org = Organisation(tenant_id or str(uuid.uuid4()), name, base_currency)
        org.add_account("200", "Sales")
        org.add_account("260", "Other Revenue")
        self.organisations[org.tenant_id] = org
        return org

    def connect(self, client_id: str, tenant_id: str) -> JSON:
        """What a user consenting to the app for an organisation does."""
        org = self.organisations[tenant_id]
        now = datetime.now(UTC).isoformat()
        connection = {
            "id": str(uuid.uuid4()),
            "authEventId": str(uuid.uuid4()),
            "tenantId": tenant_id,
            "tenantType": "ORGANISATION",
            "tenantName": org.name,
            "createdDateUtc": now,
            "updatedDateUtc": now,
        }
        self.connections[client_id][tenant_id] = connection
        return connection

    def issue_tokens(self, client_id: str, tenants: tuple[str, ...] | None = None) -> JSON:
        """A fresh token pair for the client's connected tenants (as a code exchange gives)."""
        tenants = tenants if tenants is not None else tuple(self.connections[client_id])
        return self._pair(client_id, tenants)

    def seed_refresh_token(self, client_id: str, token: str, tenants: tuple[str, ...]) -> None:
        """Accept `token` as an unused refresh token (the local stack stores it up front)."""
        self.refresh_tokens[token] = _Refresh(
            client_id, tenants, self.clock() + self.config.refresh_ttl
        )

    def inject(self, **fault: Any) -> None:
        self.faults.append(Fault(**fault))

    def reset_stats(self) -> None:
        self.stats = {
            "calls": 0,
            "admitted": 0,
            "rate_limited": {"minute": 0, "concurrent": 0, "day": 0, "appminute": 0},
            "admitted_at": [],
            "max_concurrent": 0,
            "batch_sizes": [],
            "token_grants": collections.Counter(),
            "dropped_after_commit": 0,
            "idempotent_replays": 0,
        }

    def reset(self) -> None:
        for org in self.organisations.values():
            for kind in KINDS.values():
                org.documents[kind.collection].clear()
                org.numbers[kind.collection].clear()
        self.faults.clear()
        self._usage.clear()
        self._app_window.clear()
        self._idempotency.clear()
        self.requests.clear()
        self.reset_stats()

    def documents(self, tenant_id: str, collection: str = "Invoices") -> list[JSON]:
        return list(self.organisations[tenant_id].documents[collection].values())

    def set_status(self, tenant_id: str, document_id: str, status: str) -> JSON:
        """Bypass the API (an accountant in Xero's UI): approve, pay or void a document."""
        for docs in self.organisations[tenant_id].documents.values():
            if document_id in docs:
                docs[document_id]["Status"] = status
                return docs[document_id]
        raise KeyError(document_id)

    def spend_minute(self, tenant_id: str, calls: int) -> None:
        """Calls another app made for the organisation this minute (shared quota)."""
        self._usage[tenant_id].window.extend([self.clock()] * calls)

    def exhaust_day(self, tenant_id: str) -> None:
        usage = self._usage[tenant_id]
        usage.day_started = usage.day_started or self.clock()
        usage.today = self.config.daily

    # ---- limits -------------------------------------------------------------------------

    def _remaining(self, tenant_id: str) -> dict[str, str]:
        c, usage = self.config, self._usage[tenant_id]
        return {
            "X-MinLimit-Remaining": str(max(0, c.minute_limit - len(usage.window))),
            "X-DayLimit-Remaining": str(max(0, c.daily - usage.today)),
            "X-AppMinLimit-Remaining": str(max(0, c.app_minute - len(self._app_window))),
        }

    def _admit(self, tenant_id: str) -> web.Response | None:
        c, now = self.config, self.clock()
        usage = self._usage[tenant_id]
        for window in (usage.window, self._app_window):
            while window and window[0] <= now - c.window_seconds:
                window.popleft()
        if usage.day_started is None or now - usage.day_started >= c.day_seconds:
            usage.day_started, usage.today = now, 0
        self.stats["calls"] += 1
        problem: str | None = None
        retry = 1.0
        if c.rate_limits:
            if usage.today >= c.daily:
                problem, retry = "day", usage.day_started + c.day_seconds - now
            elif len(self._app_window) >= c.app_minute:
                problem, retry = "appminute", self._app_window[0] + c.window_seconds - now
            elif len(usage.window) >= c.minute_limit:
                problem, retry = "minute", usage.window[0] + c.window_seconds - now
            elif usage.active >= c.concurrent:
                problem = "concurrent"
        if problem is not None:
            self.stats["rate_limited"][problem] += 1
            headers = {
                **self._remaining(tenant_id),
                "Retry-After": _seconds(retry),
                "X-Rate-Limit-Problem": problem,
            }
            return _json(
                429,
                {
                    "Title": "Too Many Requests",
                    "Status": 429,
                    "Detail": f"{problem} rate limit exceeded",
                },
                headers,
            )
        usage.window.append(now)
        self._app_window.append(now)
        usage.today += 1
        usage.active += 1
        self.stats["admitted"] += 1
        self.stats["admitted_at"].append(now)
        self.stats["max_concurrent"] = max(self.stats["max_concurrent"], usage.active)
        self._admitted.set()
        return None

    async def wait_active(self, tenant_id: str, count: int) -> None:
        """Until `count` calls of the tenant are in progress (tests of the concurrent limit)."""
        while self._usage[tenant_id].active < count:
            self._admitted.clear()
            await self._admitted.wait()

    # ---- the accounting API -------------------------------------------------------------

    def _authorised(self, request: web.Request) -> _Access | web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        access = self.access_tokens.get(token)
        if access is None or access.expires <= self.clock():
            return _problem(
                401, "Unauthorized", "TokenExpired" if access else "AuthenticationUnsuccessful"
            )
        return access

    async def _api(
        self, request: web.Request, handler: Callable[[Organisation], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        access = self._authorised(request)
        if isinstance(access, web.Response):
            return access
        tenant_id = request.headers.get("xero-tenant-id", "")
        if not tenant_id or tenant_id not in access.tenants or tenant_id not in self.organisations:
            return _problem(403, "Forbidden", "AuthorizationUnsuccessful")
        limited = self._admit(tenant_id)
        if limited is not None:
            return limited
        usage = self._usage[tenant_id]
        try:
            fault = self._take_fault(request)
            delay = self.config.latency + (fault.latency if fault else 0.0)
            if delay:
                await asyncio.sleep(delay)
            if fault is not None and fault.status is not None:
                response: web.StreamResponse = self._injected(fault)
            elif fault is not None and fault.action == "drop_before_commit":
                return drop_connection(request)
            else:
                response = await handler(self.organisations[tenant_id])
                if fault is not None and fault.action == "drop_after_commit":
                    self.stats["dropped_after_commit"] += 1
                    return drop_connection(request)
        finally:
            usage.active -= 1
        response.headers.update(self._remaining(tenant_id))
        return response

    def _take_fault(self, request: web.Request) -> Fault | None:
        path = request.path.removeprefix(API)
        for fault in self.faults:
            if (
                fault.count > 0
                and path.startswith(fault.path)
                and fault.method in (None, request.method)
            ):
                fault.count -= 1
                self.faults = [f for f in self.faults if f.count > 0]
                return fault
        return None

    @staticmethod
    def _injected(fault: Fault) -> web.Response:
        status = fault.status or 500
        if status == 429:
            headers = {"Retry-After": _seconds(fault.retry_after), "X-Rate-Limit-Problem": "minute"}
            return _json(429, {"Title": "Too Many Requests", "Status": 429}, headers)
        if status == 401:
            return _problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        return _json(
            status,
            {
                "Title": "An error occurred",
                "Status": status,
                "Detail": "injected by the local Xero",
            },
        )

    async def _write(self, request: web.Request) -> web.StreamResponse:
        kind = KINDS[request.match_info["collection"]]
        raw = await request.read()

        async def handle(org: Organisation) -> web.StreamResponse:
            # Validation is CPU work: done off the event loop (one write at a time), so the
            # loop admits and counts other calls when they arrive, as Xero does.
            async with self._writing:
                return await asyncio.to_thread(self._write_documents, request, org, kind, raw)

        return await self._api(request, handle)

    def _write_documents(
        self, request: web.Request, org: Organisation, kind: Kind, raw: bytes
    ) -> web.Response:
        if len(raw) > MAX_BODY:
            return _json(413, validation_exception("The request is larger than 3.5 MB"))
        key = request.headers.get("Idempotency-Key")
        fingerprint = hashlib.sha256(
            request.method.encode() + request.path_qs.encode() + raw
        ).hexdigest()
        if key is not None:
            if len(key) > MAX_IDEMPOTENCY_KEY:
                return _json(
                    400,
                    validation_exception(
                        "The Idempotency-Key header must be 128 characters or fewer"
                    ),
                )
            stored = self._idempotency.get((org.tenant_id, key))
            if stored is not None:
                if stored[0] != fingerprint:
                    return _json(
                        400,
                        validation_exception(
                            "The Idempotency-Key was used with a different request"
                        ),
                    )
                self.stats["idempotent_replays"] += 1
                return web.Response(
                    status=stored[1], text=stored[2], content_type="application/json"
                )
        status, body = self._documents_answer(request, org, kind, raw)
        text = dumps(body)
        if key is not None:
            self._idempotency[(org.tenant_id, key)] = (fingerprint, status, text)
        return web.Response(status=status, text=text, content_type="application/json")

    def _documents_answer(
        self, request: web.Request, org: Organisation, kind: Kind, raw: bytes
    ) -> tuple[int, JSON]:
        try:
            body = loads(raw)
        except ValueError:
            return 400, validation_exception("The request body is not valid JSON")
        elements = body.get(kind.collection) if isinstance(body, dict) else None
        if isinstance(body, dict) and elements is None and "Type" in body:
            elements = [body]  # a single document without the wrapper, as Xero accepts
        if not isinstance(elements, list):
            return 400, validation_exception(f"The request must hold a list of {kind.collection}")
        summarize = request.query.get("summarizeErrors", "true").lower() != "false"
        unitdp = int(request.query.get("unitdp", "2") or 2)
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "tenant": org.tenant_id,
                "body": body,
                "headers": {
                    k: v
                    for k, v in request.headers.items()
                    if k.lower() in ("idempotency-key", "xero-tenant-id")
                },
            }
        )
        self.stats["batch_sizes"].append(len(elements))
        create_only = request.method == "PUT"
        if summarize:
            # All or nothing: try on a copy, keep it only if every element passes.
            trial = _copy(org)
            answers = [
                trial.apply(kind, e, create_only=create_only, unitdp=unitdp) for e in elements
            ]
            refused = [a for a in answers if a["HasErrors"]]
            if refused:
                return 400, validation_exception("A validation exception occurred", refused)
            _adopt(org, trial)
        else:
            answers = [org.apply(kind, e, create_only=create_only, unitdp=unitdp) for e in elements]
        return 200, {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": "billsync local Xero",
            "DateTimeUTC": _now_ms(),
            kind.collection: answers,
        }

    async def _list(self, request: web.Request) -> web.StreamResponse:
        kind = KINDS[request.match_info["collection"]]

        async def handle(org: Organisation) -> web.StreamResponse:
            return self._list_documents(request, org, kind)

        return await self._api(request, handle)

    def _list_documents(self, request: web.Request, org: Organisation, kind: Kind) -> web.Response:
        docs = list(org.documents[kind.collection].values())
        ids = _csv(request.query.get("IDs"))
        numbers = _csv(request.query.get(f"{kind.number_field}s"))
        if ids:
            docs = [d for d in docs if d[kind.id_field] in ids]
        if numbers:
            docs = [d for d in docs if d.get(kind.number_field) in numbers]
        where = request.query.get("where")
        if where:
            matcher = _where(where)
            if matcher is None:
                return _json(
                    400,
                    validation_exception(
                        f"The where clause is not supported by the local Xero: {where}"
                    ),
                )
            docs = [d for d in docs if matcher(d)]
        page = max(1, int(request.query.get("page", "1") or 1))
        chunk = docs[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        return _json(
            200,
            {
                "Id": str(uuid.uuid4()),
                "Status": "OK",
                "DateTimeUTC": _now_ms(),
                kind.collection: chunk,
            },
        )

    async def _get_one(self, request: web.Request) -> web.StreamResponse:
        kind = KINDS[request.match_info["collection"]]
        ident = request.match_info["id"]

        async def handle(org: Organisation) -> web.StreamResponse:
            doc = org.documents[kind.collection].get(ident) or org.by_number(kind, ident)
            if doc is None:
                return _json(
                    404,
                    {
                        "Title": "Not Found",
                        "Status": 404,
                        "Detail": f"{kind.label} {ident} not found",
                    },
                )
            return _json(200, {"Id": str(uuid.uuid4()), "Status": "OK", kind.collection: [doc]})

        return await self._api(request, handle)

    async def _catalogue(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["collection"]

        async def handle(org: Organisation) -> web.StreamResponse:
            source = {"Contacts": org.contacts, "Items": org.items, "Accounts": org.accounts}[name]
            return _json(
                200, {"Id": str(uuid.uuid4()), "Status": "OK", name: list(source.values())}
            )

        return await self._api(request, handle)

    # ---- identity -----------------------------------------------------------------------

    def _pair(self, client_id: str, tenants: tuple[str, ...], *, refresh: bool = True) -> JSON:
        now = self.clock()
        access = "xat-" + secrets.token_urlsafe(24)
        self.access_tokens[access] = _Access(client_id, tenants, now + self.config.access_ttl)
        answer: JSON = {
            "access_token": access,
            "expires_in": int(self.config.access_ttl),
            "token_type": "Bearer",
            "scope": "accounting.transactions offline_access",
        }
        if refresh:
            token = "xrt-" + secrets.token_urlsafe(24)
            self.refresh_tokens[token] = _Refresh(client_id, tenants, now + self.config.refresh_ttl)
            answer["refresh_token"] = token
        return answer

    def _client(self, request: web.Request, form: dict[str, str]) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        known = self.config.clients.get(client_id)
        return client_id if known is not None and secrets.compare_digest(known, secret) else None

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        client_id, redirect = q.get("client_id", ""), q.get("redirect_uri", "")
        if client_id not in self.config.clients or q.get("response_type") != "code" or not redirect:
            return _json(400, {"error": "invalid_request"})
        tenants = tuple(self.organisations)  # the user consents for every organisation shown
        for tenant in tenants:
            if tenant not in self.connections[client_id]:
                self.connect(client_id, tenant)
        code = "xcode-" + secrets.token_urlsafe(16)
        self.codes[code] = (client_id, redirect, tenants)
        params = {
            "code": code,
            "scope": q.get("scope", ""),
            **({"state": q["state"]} if "state" in q else {}),
        }
        raise web.HTTPFound(f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(params)}")

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        client_id = self._client(request, form)
        if client_id is None:
            return _json(400, {"error": "invalid_client"})
        grant = form.get("grant_type", "")
        self.stats["token_grants"][grant] += 1
        now = self.clock()
        if grant == "authorization_code":
            found = self.codes.pop(form.get("code", ""), None)
            if found is None or found[0] != client_id or found[1] != form.get("redirect_uri"):
                return _json(400, {"error": "invalid_grant"})
            return _json(200, self._pair(client_id, found[2]))
        if grant == "refresh_token":
            token = form.get("refresh_token", "")
            state = self.refresh_tokens.get(token)
            if state is None or state.client_id != client_id or state.expires <= now:
                return _json(400, {"error": "invalid_grant"})
            if state.used_at is not None:
                if now - state.used_at > self.config.refresh_grace or state.successor is None:
                    return _json(400, {"error": "invalid_grant"})
                # Within the grace period: the same successor, a fresh access token.
                answer = self._pair(client_id, state.tenants, refresh=False)
                answer["refresh_token"] = state.successor
                return _json(200, answer)
            answer = self._pair(client_id, state.tenants)
            state.used_at, state.successor = now, answer["refresh_token"]
            return _json(200, answer)
        if grant == "client_credentials":
            tenant = self.config.custom_connections.get(client_id)
            if tenant is None:
                return _json(400, {"error": "unauthorized_client"})
            if tenant not in self.connections[client_id]:
                self.connect(client_id, tenant)
            return _json(200, self._pair(client_id, (tenant,), refresh=False))
        return _json(400, {"error": "unsupported_grant_type"})

    async def _connections(self, request: web.Request) -> web.StreamResponse:
        access = self._authorised(request)
        if isinstance(access, web.Response):
            return access
        return _json(
            200, [c for t, c in self.connections[access.client_id].items() if t in access.tenants]
        )

    async def _disconnect(self, request: web.Request) -> web.StreamResponse:
        access = self._authorised(request)
        if isinstance(access, web.Response):
            return access
        connections = self.connections[access.client_id]
        for tenant, connection in list(connections.items()):
            if connection["id"] == request.match_info["id"]:
                del connections[tenant]
                return web.Response(status=204)
        return web.Response(status=404)

    # ---- inspection and control over HTTP -----------------------------------------------

    async def _state(self, request: web.Request) -> web.StreamResponse:
        return _json(
            200,
            {
                "organisations": [
                    {
                        "tenantId": org.tenant_id,
                        "name": org.name,
                        "contacts": list(org.contacts.values()),
                        "items": list(org.items.values()),
                        "accounts": list(org.accounts.values()),
                        "invoices": list(org.documents["Invoices"].values()),
                        "creditNotes": list(org.documents["CreditNotes"].values()),
                    }
                    for org in self.organisations.values()
                ]
            },
        )

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        """Counters; `?times=1` adds when each admitted call was admitted (this process's
        monotonic clock) and `documents` counts what the organisations hold."""
        out = {k: v for k, v in self.stats.items() if k != "admitted_at"}
        if request.query.get("times"):
            out["admitted_at"] = self.stats["admitted_at"]
        out["documents"] = sum(
            len(docs) for org in self.organisations.values() for docs in org.documents.values()
        )
        return _json(200, out)

    async def _seed(self, request: web.Request) -> web.StreamResponse:
        """`{"tenantId", "name", "contacts": [{ContactID, Name}], "items": [{Code,
        AccountCode}], "accounts": [{Code, Name}], "clients": {"id": "secret"},
        "customConnections": {"id": tenant}}`"""
        body = loads(await request.read())
        org = self.organisations.get(body.get("tenantId", "")) or self.add_organisation(
            body.get("name", "Demo Company"), body.get("tenantId")
        )
        for contact in body.get("contacts", []):
            org.add_contact(contact["Name"], contact.get("ContactID"))
        for account in body.get("accounts", []):
            org.add_account(account["Code"], account.get("Name", account["Code"]))
        for item in body.get("items", []):
            org.add_item(item["Code"], item.get("Name"), item.get("AccountCode"))
        self.config.clients.update(body.get("clients", {}))
        self.config.custom_connections.update(body.get("customConnections", {}))
        return _json(200, {"tenantId": org.tenant_id})

    async def _faults(self, request: web.Request) -> web.StreamResponse:
        self.inject(**loads(await request.read()))
        return _json(200, {"faults": len(self.faults)})

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return _json(200, {"reset": True})

    async def _set_status(self, request: web.Request) -> web.StreamResponse:
        body = loads(await request.read())
        try:
            doc = self.set_status(body["tenantId"], request.match_info["id"], body["status"])
        except KeyError:
            return _json(404, {"Status": 404})
        return _json(200, doc)


# ---- helpers ------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    """Retry-After in whole seconds as Xero sends it (fractions only below one second, for
    tests that scale the windows down)."""
    value = max(0.0, value)
    return str(math.ceil(value)) if value >= 1 else f"{value:.3f}"


def _now_ms() -> str:
    return f"/Date({int(time.time() * 1000)})/"


def _csv(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split(",") if part.strip()}


def _where(clause: str) -> Callable[[JSON], bool] | None:
    """The `Field=="value"` clauses joined by `OR` / `AND` that look-ups use."""
    parts = re.split(r"\s+(OR|AND)\s+", clause.strip())
    tests: list[Callable[[JSON], bool]] = []
    ops: list[str] = []
    for index, part in enumerate(parts):
        if index % 2:
            ops.append(part)
            continue
        match = re.fullmatch(r'\(?\s*([A-Za-z.]+)\s*==\s*"([^"]*)"\s*\)?', part)
        if match is None:
            return None
        tests.append(_equals(*match.groups()))
    if len(set(ops)) > 1:
        return None
    if ops and ops[0] == "AND":
        return lambda d: all(t(d) for t in tests)
    return lambda d: any(t(d) for t in tests)


def _equals(name: str, value: str) -> Callable[[JSON], bool]:
    return lambda document: str(_field(document, name)) == value


def _field(document: JSON, dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _copy(org: Organisation) -> Organisation:
    return copy.deepcopy(org)


def _adopt(org: Organisation, trial: Organisation) -> None:
    org.contacts, org.documents, org.numbers = trial.contacts, trial.documents, trial.numbers
    org.sequence = trial.sequence


__all__ = ["CREDIT_NOTE", "INVOICE", "FakeXero", "FakeXeroConfig", "Fault", "validation_exception"]
