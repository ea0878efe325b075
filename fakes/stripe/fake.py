"""``FakeStripe``: the Python API tests use to run, configure and inspect the fake."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from fakes.common.serve import ServedApp

from . import customers
from .app import build_app, control_routes, state_json
from .config import FakeStripeConfig
from .core import Core
from .objects import render_invoice
from .state import JSON, Namespace
from .validation import Metadata


class FakeStripe(ServedApp):
    """An in-process fake of the Stripe API (``/v1``) served by aiohttp.

    ``FakeStripe(["sk_test_123"], rate_limits={"enabled": False})``; keyword arguments are
    config patches (see ``FakeStripeConfig``). ``clock`` (wall time, for ``created``,
    idempotency expiry and webhook timestamps) and ``monotonic`` (rate-limit windows) can
    be injected; ``advance_time`` moves the wall clock forward.
    """

    def __init__(
        self,
        api_keys: Iterable[str] = ("sk_test_123",),
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        **config: Any,
    ) -> None:
        self._base_clock = clock
        self._offset = 0.0
        self.core = Core(FakeStripeConfig(api_keys=list(api_keys)), self.now, monotonic)
        if config:
            self.core.configure(config)
        self.app = build_app(
            self.core, control_routes(self.core, self._seed_json, self.advance_time)
        )
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    # -- lifecycle (``start`` from ServedApp) --------------------------------------------

    async def stop(self) -> None:
        await self.core.webhooks.close()
        await super().stop()

    # -- configuration and control -------------------------------------------------------

    @property
    def config(self) -> FakeStripeConfig:
        return self.core.config

    def configure(self, **patch: Any) -> dict[str, Any]:
        """Patch the config (same shape as ``POST /_fake/config``); returns the result."""
        self.core.configure(patch)
        return self.core.config.to_json()

    def reset(self) -> None:
        """Forget all objects, idempotency keys, rate windows and stats (config stays)."""
        self.core.reset()

    def now(self) -> float:
        return self._base_clock() + self._offset

    def advance_time(self, seconds: float) -> float:
        self._offset += seconds
        return self.now()

    def seed_customer(
        self,
        id: str,
        *,
        currency: str | None = None,
        account: str | None = None,
        livemode: bool = False,
        email: str | None = None,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
        payment_fails: bool = False,
    ) -> JSON:
        """Create (or replace) a customer with a chosen id; ``payment_fails`` makes
        ``/pay`` answer a 402 ``card_declined``."""
        meta = Metadata().check(metadata or {}, "metadata")
        return customers.seed(
            self.core.store,
            self._ns(account, livemode),
            id,
            currency=currency.lower() if currency else None,
            email=email,
            name=name,
            metadata=meta,
            payment_fails=payment_fails,
        )

    def _seed_json(self, spec: dict[str, Any]) -> JSON:
        return self.seed_customer(
            spec["id"],
            currency=spec.get("currency"),
            account=spec.get("account"),
            livemode=bool(spec.get("livemode", False)),
            email=spec.get("email"),
            name=spec.get("name"),
            metadata=spec.get("metadata"),
            payment_fails=bool(spec.get("payment_fails", False)),
        )

    # -- inspection ----------------------------------------------------------------------

    def _ns(self, account: str | None, livemode: bool) -> Namespace:
        return self.core.store.ns(livemode, account)

    def customers(self, account: str | None = None, *, livemode: bool = False) -> list[JSON]:
        return list(self._ns(account, livemode).customers.values())

    def invoices(self, account: str | None = None, *, livemode: bool = False) -> list[JSON]:
        """Every invoice (oldest first) with all its lines under ``lines.data``."""
        ns = self._ns(account, livemode)
        return [render_invoice(ns, i, all_lines=True) for i in ns.invoices.values()]

    def invoice(self, id: str, account: str | None = None, *, livemode: bool = False) -> JSON:
        ns = self._ns(account, livemode)
        return render_invoice(ns, ns.invoices[id], all_lines=True)

    def invoice_items(self, account: str | None = None, *, livemode: bool = False) -> list[JSON]:
        return list(self._ns(account, livemode).invoice_items.values())

    def events(self, account: str | None = None, *, livemode: bool = False) -> list[JSON]:
        return list(self._ns(account, livemode).events)

    def state(self) -> dict[str, Any]:
        """The same document as ``GET /_fake/state``."""
        return state_json(self.core)

    @property
    def stats(self) -> dict[str, Any]:
        """The same document as ``GET /_fake/stats``."""
        return self.core.stats.to_json()

    @property
    def webhook_deliveries(self) -> list[dict[str, Any]]:
        return list(self.core.webhooks.deliveries)

    async def drain_webhooks(self) -> None:
        await self.core.webhooks.drain()
