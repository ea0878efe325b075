"""``FakePaddle``: the Python API tests use to run, configure, seed and inspect the local
Paddle, and the ``/_fake`` control endpoints (state, stats, config, reset, seed)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from fakes.common.serve import ServedApp

from . import core, transactions
from .config import FakePaddleConfig
from .errors import PaddleError
from .state import JSON, new_id


class FakePaddle(ServedApp):
    """An in-process local Paddle served by aiohttp, for one environment.

    ``FakePaddle(["pdl_sdbx_apikey_x"], environment="sandbox", rate_limits={...})``; keyword
    arguments are config patches (see ``FakePaddleConfig``)."""

    def __init__(
        self,
        api_keys: Iterable[str] = ("pdl_sdbx_apikey_local",),
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        **config: Any,
    ) -> None:
        self.core = core.Core(FakePaddleConfig(api_keys=list(api_keys)), clock, monotonic)
        if config:
            self.core.configure(config)
        self.app = web.Application(client_max_size=8 * 1024 * 1024)
        for endpoint in core.ENDPOINTS:
            self.app.router.add_route(
                endpoint.method, endpoint.path, core.route(self.core, endpoint)
            )
        self.app.router.add_routes(self._control())
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    # -- configuration and seeding -------------------------------------------------------

    @property
    def config(self) -> FakePaddleConfig:
        return self.core.config

    def configure(self, **patch: Any) -> JSON:
        self.core.configure(patch)
        return self.core.config.to_json()

    def reset(self) -> None:
        """Forget every object, the rate windows and the stats (config stays)."""
        self.core.reset()

    def seed_customer(
        self,
        *,
        name: str | None = "Acme Inc",
        email: str | None = None,
        country: str | None = "US",
        business: str | None = None,
        customer_id: str | None = None,
        address_id: str | None = None,
        business_id: str | None = None,
    ) -> JSON:
        """A customer (with an address in `country` and a business named `business` when
        given): {"customer_id", "address_id", "business_id"}."""
        store = self.core.store
        now = store.timestamp()
        cid = customer_id or new_id("ctm")
        store.customers[cid] = {
            "id": cid,
            "name": name,
            "email": email or f"{cid}@example.com",
            "marketing_consent": False,
            "status": "active",
            "custom_data": None,
            "locale": "en",
            "created_at": now,
            "updated_at": now,
            "import_meta": None,
        }
        out: JSON = {"customer_id": cid, "address_id": None, "business_id": None}
        if country:
            aid = address_id or new_id("add")
            store.addresses[aid] = {
                "id": aid,
                "customer_id": cid,
                "first_line": "1 Main Street",
                "city": "Springfield",
                "postal_code": "12345",
                "region": None,
                "country_code": country,
                "status": "active",
                "created_at": now,
                "updated_at": now,
            }
            out["address_id"] = aid
        if business:
            bid = business_id or new_id("biz")
            store.businesses[bid] = {
                "id": bid,
                "customer_id": cid,
                "name": business,
                "status": "active",
                "created_at": now,
                "updated_at": now,
            }
            out["business_id"] = bid
        return out

    def seed_product(self, name: str = "Usage", tax_category: str = "standard") -> str:
        pid = new_id("pro")
        self.core.store.products[pid] = {
            "id": pid,
            "name": name,
            "tax_category": tax_category,
            "custom_data": None,
            "status": "active",
        }
        return pid

    def set_status(self, txn_id: str, status: str) -> JSON:
        """Move a transaction as Paddle would (billed, paid, completed, canceled)."""
        txn = self.core.store.transactions[txn_id]
        txn["status"] = status
        if status == "billed" and txn["billed_at"] is None:
            txn["billed_at"] = self.core.store.timestamp()
        return transactions.render(txn)

    # -- inspection ----------------------------------------------------------------------

    def transactions(self) -> list[JSON]:
        """Every transaction, oldest first, as the API renders it."""
        return [transactions.render(t) for t in self.core.store.transactions.values()]

    def transaction(self, txn_id: str) -> JSON:
        return transactions.render(self.core.store.transactions[txn_id])

    def state(self) -> JSON:
        store = self.core.store
        return {
            "environment": self.config.environment,
            "customers": list(store.customers.values()),
            "addresses": list(store.addresses.values()),
            "businesses": list(store.businesses.values()),
            "products": list(store.products.values()),
            "transactions": self.transactions(),
        }

    @property
    def stats(self) -> JSON:
        return self.core.stats.to_json()

    def _control(self) -> list[web.RouteDef]:
        async def body(request: web.Request) -> Any:
            text = await request.text()
            return json.loads(text) if text.strip() else {}

        async def get_state(_: web.Request) -> web.StreamResponse:
            return web.json_response(self.state())

        async def get_stats(_: web.Request) -> web.StreamResponse:
            return web.json_response(self.stats)

        async def reset(_: web.Request) -> web.StreamResponse:
            self.reset()
            return web.json_response({"reset": True})

        async def get_config(_: web.Request) -> web.StreamResponse:
            return web.json_response(self.config.to_json())

        async def post_config(request: web.Request) -> web.StreamResponse:
            try:
                return web.json_response(self.configure(**await body(request)))
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)

        async def post_customers(request: web.Request) -> web.StreamResponse:
            spec = await body(request)
            try:
                return web.json_response(self.seed_customer(**spec))
            except TypeError as exc:
                return web.json_response({"error": f"bad customer spec: {exc}"}, status=400)

        async def post_status(request: web.Request) -> web.StreamResponse:
            txn_id = request.match_info["transaction_id"]
            if txn_id not in self.core.store.transactions:
                error = PaddleError(404, "not_found", f"Transaction {txn_id} not found.")
                return web.json_response(error.body("fake"), status=404)
            return web.json_response(self.set_status(txn_id, (await body(request))["status"]))

        return [
            web.get("/_fake/state", get_state),
            web.get("/_fake/stats", get_stats),
            web.post("/_fake/reset", reset),
            web.get("/_fake/config", get_config),
            web.post("/_fake/config", post_config),
            web.post("/_fake/customers", post_customers),
            web.post("/_fake/transactions/{transaction_id}/status", post_status),
        ]
