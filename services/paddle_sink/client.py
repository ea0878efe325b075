"""`PaddleApi`: Paddle Billing over aiohttp, one method per request, small frozen views.

Paddle's own Python SDK is synchronous and retries POSTs by itself, and Paddle has no
idempotency key: a blind retry of `POST /transactions` makes a second transaction. So this
client never retries; the sink framework owns retries and the destination looks a
transaction up before writing again (see destination.py).

`Authorization: Bearer <key>`, `Paddle-Version: 1`. The base address is chosen by the
destination (live `https://api.paddle.com`, sandbox `https://sandbox-api.paddle.com`),
each overridable by an environment variable (the local Paddle, a proxy). A non-2xx answer
raises `PaddleApiError` with Paddle's `{type, code, detail, errors}`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from shared.contracts import Destination

API_VERSION = "1"
LIVE_API_BASE = "https://api.paddle.com"
SANDBOX_API_BASE = "https://sandbox-api.paddle.com"
API_BASE_ENV = {
    Destination.PADDLE: "BILLSYNC_PADDLE_API_BASE",
    Destination.PADDLE_SANDBOX: "BILLSYNC_PADDLE_SANDBOX_API_BASE",
}
DASHBOARD = {
    Destination.PADDLE: "https://vendors.paddle.com",
    Destination.PADDLE_SANDBOX: "https://sandbox-vendors.paddle.com",
}
PAGE = 30  # Paddle's most transactions per page


def api_base_for(destination: Destination) -> str:
    default = LIVE_API_BASE if destination is Destination.PADDLE else SANDBOX_API_BASE
    return os.environ.get(API_BASE_ENV[destination], default)


class PaddleApiError(Exception):
    """Paddle answered with an error (`status` is the HTTP status)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: tuple[tuple[str, str], ...] = (),
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.request_id = request_id
        self.headers = dict(headers or {})

    @property
    def text(self) -> str:
        """Paddle's error as the run's error text: detail, then each field's message."""
        fields = "; ".join(f"{f}: {m}" for f, m in self.errors)
        return f"{self.detail}{' (' + fields + ')' if fields else ''}"


@dataclass(frozen=True)
class TransactionView:
    id: str
    status: str  # draft | ready | billed | paid | completed | canceled | past_due
    customer_id: str | None
    currency: str | None
    custom_data: Mapping[str, str]
    created_at: str
    grand_total: int  # minor units
    invoice_number: str | None = None
    checkout_url: str | None = None

    @property
    def editable(self) -> bool:
        return self.status in ("draft", "ready")


@dataclass(frozen=True)
class TransactionPage:
    items: tuple[TransactionView, ...]
    after: str | None  # the cursor of the next page; None on the last


def _view(data: Mapping[str, Any]) -> TransactionView:
    totals = (data.get("details") or {}).get("totals") or {}
    custom = data.get("custom_data") or {}
    return TransactionView(
        id=str(data["id"]),
        status=str(data["status"]),
        customer_id=data.get("customer_id"),
        currency=data.get("currency_code"),
        custom_data={str(k): str(v) for k, v in custom.items()},
        created_at=str(data.get("created_at", "")),
        grand_total=int(totals.get("grand_total") or 0),
        invoice_number=data.get("invoice_number"),
        checkout_url=(data.get("checkout") or {}).get("url"),
    )


@dataclass
class PaddleApi:
    api_key: str = field(repr=False)
    api_base: str
    destination: Destination
    timeout: float = 30.0
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self.api_base.rstrip("/") + "/",
                headers={
                    "Authorization": f"Bearer {self.api_key}",
                    "Paddle-Version": API_VERSION,
                    "Content-Type": "application/json",
                },
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        async with self._http().request(method, path.lstrip("/"), json=json, params=params) as resp:
            try:
                body: Any = await resp.json(content_type=None)
            except ValueError:
                body = None
            if resp.status >= 400:
                raise _error(resp.status, body, resp.headers)
            if not isinstance(body, dict):
                raise PaddleApiError(resp.status, "bad_response", "Paddle answered without JSON")
            return body

    # ---- requests ------------------------------------------------------------------------

    async def create_transaction(self, body: Mapping[str, Any]) -> TransactionView:
        return _view((await self._request("POST", "/transactions", json=body))["data"])

    async def update_transaction(self, txn_id: str, body: Mapping[str, Any]) -> TransactionView:
        answer = await self._request("PATCH", f"/transactions/{txn_id}", json=body)
        return _view(answer["data"])

    async def get_transaction(self, txn_id: str) -> TransactionView:
        return _view((await self._request("GET", f"/transactions/{txn_id}"))["data"])

    async def list_transactions(
        self, customer_id: str, created_from: str | None = None, after: str | None = None
    ) -> TransactionPage:
        """A customer's transactions, newest first (Paddle cannot filter on custom_data)."""
        params = {
            "customer_id": customer_id,
            "order_by": "created_at[DESC]",
            "per_page": str(PAGE),
        }
        if created_from:
            params["created_at[GTE]"] = created_from
        if after:
            params["after"] = after
        answer = await self._request("GET", "/transactions", params=params)
        pagination = (answer.get("meta") or {}).get("pagination") or {}
        cursor = None
        if pagination.get("has_more") and pagination.get("next"):
            cursor = parse_qs(urlsplit(str(pagination["next"])).query).get("after", [None])[0]
        return TransactionPage(tuple(_view(t) for t in answer.get("data", [])), cursor)

    async def ping(self) -> None:
        """The cheapest authenticated request the sink's own permissions allow."""
        await self._request("GET", "/transactions", params={"per_page": "1"})

    def dashboard_url(self, txn_id: str) -> str:
        return f"{DASHBOARD[self.destination]}/transactions-v2/{txn_id}"


def _error(status: int, body: Any, headers: Mapping[str, str]) -> PaddleApiError:
    error = body.get("error") if isinstance(body, dict) else None
    meta = body.get("meta") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return PaddleApiError(status, f"http_{status}", f"HTTP {status}", headers=headers)
    errors = tuple(
        (str(e.get("field", "")), str(e.get("message", "")))
        for e in error.get("errors") or []
        if isinstance(e, dict)
    )
    return PaddleApiError(
        status,
        str(error.get("code", f"http_{status}")),
        str(error.get("detail", "")),
        errors=errors,
        request_id=(meta or {}).get("request_id"),
        headers=headers,
    )
