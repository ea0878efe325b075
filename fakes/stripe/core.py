"""The request pipeline of the fake's ``/v1`` API.

Order, as at Stripe: authentication and rate limiting first (never saved for idempotent
replay), then the idempotency layer, parameter validation (not saved either), then the
endpoint executes; its result, success or error, is saved for the idempotency key. Injected
faults sit between validation and execution.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from fakes.common.faults import drop_connection

from . import expand, forms
from .config import FakeStripeConfig, apply_patch
from .context import Ctx, Endpoint
from .errors import StripeError, invalid
from .faults import FaultInjector, injected_error
from .idempotency import IdempotencyStore, Record, Scope
from .ratelimit import RateLimiter, rate_limited
from .state import JSON, Namespace, Store
from .stats import Stats
from .validation import check_params
from .webhooks import WebhookSender

log = logging.getLogger(__name__)

API_VERSION = "2026-10-28.endive"
_KEY_PREFIXES = {"sk_live_": True, "rk_live_": True, "sk_test_": False, "rk_test_": False}


def mask_key(key: str) -> str:
    """``sk_test_abcd1234`` -> ``sk_test_****1234``, as Stripe shows keys in errors."""
    prefix = next((p for p in _KEY_PREFIXES if key.startswith(p)), "")
    middle = len(key) - len(prefix) - 4
    if middle <= 0:
        return prefix + "*" * max(len(key) - len(prefix), 0)
    return prefix + "*" * middle + key[-4:]


def livemode_of(key: str) -> bool:
    return next((live for p, live in _KEY_PREFIXES.items() if key.startswith(p)), False)


def _dump(body: JSON) -> bytes:
    return json.dumps(body, indent=2).encode()


class Core:
    def __init__(
        self,
        config: FakeStripeConfig,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = Store(clock)  # random ids: a restarted fake never reuses one
        self.idempotency = IdempotencyStore(clock, lambda: self.config.idempotency_ttl_seconds)
        self.limiter = RateLimiter(monotonic)
        self.stats = Stats()
        self.faults = FaultInjector(config.faults.seed)
        self.webhooks = WebhookSender(lambda: self.config.webhooks, clock)

    # -- control -----------------------------------------------------------------------

    def reset(self) -> None:
        self.store.reset()
        self.idempotency.reset()
        self.limiter.reset()
        self.stats = Stats()
        self.faults.reseed(self.config.faults.seed)
        self.webhooks.deliveries.clear()

    def configure(self, patch: dict[str, Any]) -> None:
        apply_patch(self.config, patch)
        if "seed" in (patch.get("faults") or {}):
            self.faults.reseed(self.config.faults.seed)

    # -- the pipeline ------------------------------------------------------------------

    def _auth(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        key = ""
        if header.startswith("Bearer "):
            key = header[len("Bearer ") :].strip()
        elif header.startswith("Basic "):
            try:
                key = base64.b64decode(header[len("Basic ") :]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
                "details, or we can help at https://support.stripe.com/.",
                stage="pre",
            )
        if key not in self.config.api_keys:
            raise StripeError(401, f"Invalid API Key provided: {mask_key(key)}", stage="pre")
        return key

    def _account(self, request: web.Request, key: str) -> str | None:
        account = request.headers.get("Stripe-Account") or None
        if account is None:
            return None
        allowed = self.config.connected_accounts
        if not account.startswith("acct_") or (allowed is not None and account not in allowed):
            raise StripeError(
                403,
                f"The provided key '{mask_key(key)}' does not have access to account "
                f"'{account}' (or that account does not exist). Application access may have "
                "been revoked.",
                code="account_invalid",
                stage="pre",
            )
        return account

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.method in ("GET", "DELETE"):
            return forms.decode(request.query_string)
        body = await request.text()
        content_type = request.content_type
        if body and content_type not in ("application/x-www-form-urlencoded", ""):
            raise invalid(
                f"Invalid request: the v1 API expects application/x-www-form-urlencoded "
                f"parameters, got {content_type}."
            )
        return forms.decode(body)

    async def handle(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        name = endpoint.name
        self.stats.request(name)
        request_id = self.store.new_id("req", 14)
        headers = {
            "Request-Id": request_id,
            "Stripe-Version": request.headers.get("Stripe-Version", API_VERSION),
        }
        try:
            return await self._handle(request, endpoint, request_id, headers)
        except StripeError as exc:
            if exc.status == 429:
                self.stats.rate_limited += 1
                self.stats.endpoint(name).rate_limited += 1
            return self._respond(name, exc.status, _dump(exc.body()), {**headers, **exc.headers})

    def _respond(
        self, name: str, status: int, body: bytes, headers: dict[str, str]
    ) -> web.Response:
        self.stats.status(name, status)
        return web.Response(
            status=status, body=body, headers=headers, content_type="application/json"
        )

    def _drop(self, request: web.Request, name: str, after_commit: bool) -> web.Response:
        if after_commit:
            self.stats.dropped_after_commit += 1
        else:
            self.stats.dropped_before_commit += 1
        self.stats.status(name, "dropped")
        return drop_connection(request)

    async def _handle(
        self, request: web.Request, endpoint: Endpoint, request_id: str, headers: dict[str, str]
    ) -> web.StreamResponse:
        name, method, path = endpoint.name, request.method, request.path
        key = self._auth(request)
        livemode = livemode_of(key)
        account = self._account(request, key)
        admission = self.limiter.admit(self.config.rate_limits, key, livemode, name)
        self.stats.windows(name, admission)
        if admission.refused is not None:
            raise rate_limited(self.config.rate_limits.retry_after_seconds, admission.refused)
        params = await self._params(request)
        idem_key = request.headers.get("Idempotency-Key") if method == "POST" else None
        scope: Scope = (key, account)
        if idem_key:
            headers["Idempotency-Key"] = idem_key
            record = self.idempotency.check(scope, idem_key, method, path, params)
            if record is not None:
                self.stats.idempotent_replays += 1
                self.stats.endpoint(name).idempotent_replays += 1
                replay = {
                    **record.headers,
                    **headers,
                    "Idempotent-Replayed": "true",
                    "Original-Request": record.request_id,
                }
                return self._respond(name, record.status, record.body, replay)
            self.idempotency.reserve(scope, idem_key)
        try:
            delay = self.faults.latency(self.config.faults)
            if delay > 0:
                await asyncio.sleep(delay)
            checked = check_params(endpoint.params, params)
            expand.check(checked.get("expand", []))
            decision = self.faults.decide(self.config.faults, method, path)
            if decision.action == "drop_before_commit":
                return self._drop(request, name, after_commit=False)
            ns = self.store.ns(livemode, account)
            if decision.action == "status":
                self.stats.injected_errors += 1
                exc = injected_error(decision.status, self.config.rate_limits.retry_after_seconds)
                if exc.status >= 500 and decision.replayed:
                    exc.headers["Stripe-Should-Retry"] = "false"
                    status, body, extra = exc.status, _dump(exc.body()), exc.headers
                    self._save(
                        scope, idem_key, method, path, params, status, body, extra, request_id
                    )
                    return self._respond(name, status, body, {**headers, **extra})
                raise exc
            ctx = Ctx(self.store, ns, self.config, dict(request.match_info), request_id, idem_key)
            status, body, extra = self._execute(endpoint, ctx, checked)
            self._save(scope, idem_key, method, path, params, status, body, extra, request_id)
            self._commit_events(ctx, headers["Stripe-Version"])
            if decision.action == "drop_after_commit":
                return self._drop(request, name, after_commit=True)
            return self._respond(name, status, body, {**headers, **extra})
        finally:
            if idem_key:
                self.idempotency.release(scope, idem_key)

    def _execute(
        self, endpoint: Endpoint, ctx: Ctx, params: dict[str, Any]
    ) -> tuple[int, bytes, dict[str, str]]:
        try:
            body = endpoint.handler(ctx, params)
            expand.apply(ctx.ns, body, params.get("expand", []))
            return 200, _dump(body), {}
        except StripeError as exc:
            if exc.stage == "pre":
                raise
            return exc.status, _dump(exc.body()), exc.headers
        except Exception:  # a bug in the fake must surface as a 500, not a hang
            log.exception("fake stripe: %s failed", endpoint.name)
            error = StripeError(
                500, "An unknown error occurred (fake Stripe bug).", type="api_error"
            )
            return 500, _dump(error.body()), {}

    def _save(
        self,
        scope: Scope,
        key: str | None,
        method: str,
        path: str,
        params: dict[str, Any],
        status: int,
        body: bytes,
        headers: dict[str, str],
        request_id: str,
    ) -> None:
        if key:
            self.idempotency.save(
                scope,
                key,
                Record(method, path, params, status, body, dict(headers), request_id, self.clock()),
            )

    def _commit_events(self, ctx: Ctx, api_version: str) -> None:
        for event_type, obj in ctx.events:
            event: JSON = {
                "id": self.store.new_id("evt"),
                "object": "event",
                "api_version": api_version,
                "created": ctx.now,
                "data": {"object": obj},
                "livemode": ctx.ns.livemode,
                "pending_webhooks": 1 if self.webhooks.wants(event_type) else 0,
                "request": {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key},
                "type": event_type,
            }
            if ctx.ns.account is not None:
                event["account"] = ctx.ns.account
            ctx.ns.events.append(event)
            self.webhooks.send(event)

    def namespace_json(self, ns: Namespace) -> JSON:
        from .objects import render_invoice

        return {
            "livemode": ns.livemode,
            "account": ns.account,
            "customers": list(ns.customers.values()),
            "invoices": [render_invoice(ns, i, all_lines=True) for i in ns.invoices.values()],
            "invoice_items": list(ns.invoice_items.values()),
            "events": list(ns.events),
        }
