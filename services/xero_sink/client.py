"""`XeroApi`: one method per Xero request, over aiohttp, returning small frozen views.

Every call carries `xero-tenant-id`; every write carries an `Idempotency-Key` (derived from
the request body, so the same write repeated is replayed by Xero, never applied twice) and
`summarizeErrors=false` (always 200: each document answers for itself) and `unitdp=4`.
Writes are POST (create or update; Xero matches an existing document by id or number):
aiohttp silently re-sends a PUT whose connection dropped, which would hide a drop from the
sink's recovery; a POST is never re-sent by the transport.

Access tokens: an OAuth 2.0 credential (code flow, rotating refresh tokens) gets its token
from the framework's `TokenRefresher` (refresh, save through the control plane, then use);
a Custom Connection (client id and secret, no refresh token) gets one by the client
credentials grant through authlib, kept in memory until it nears expiry (a new one costs
nothing and rotates nothing). The tenant is the credential's; a credential without one
takes the only organisation `GET /connections` lists."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from shared.credentials import XeroCredential
from shared.redact import scrub_secrets
from shared.sinks.errors import AuthenticationError
from shared.sinks.limits import RateHeaders
from shared.sinks.locks import KeyedLocks
from shared.sinks.token_refresh import TokenRefresher

from .wire import dumps, loads

API_BASE_ENV = "BILLSYNC_XERO_API_BASE"
TOKEN_URL_ENV = "BILLSYNC_XERO_TOKEN_URL"
DEFAULT_API_BASE = "https://api.xero.com"
DEFAULT_TOKEN_URL = "https://identity.xero.com/connect/token"
ACCOUNTING = "/api.xro/2.0"
LOOKUP_PAGE = 100  # Xero answers 100 documents a page
MAX_IDEMPOTENCY_KEY = 128


def api_base_from_env() -> str:
    return os.environ.get(API_BASE_ENV, DEFAULT_API_BASE).rstrip("/")


def token_url_from_env() -> str:
    return os.environ.get(TOKEN_URL_ENV, DEFAULT_TOKEN_URL)


class XeroApiError(Exception):
    """An answer that is not a success (status None: no answer at all)."""

    def __init__(
        self,
        status: int | None,
        message: str,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = scrub_secrets(message)
        self.headers = dict(headers or {})
        self.code = code


@dataclass(frozen=True)
class XeroDocument:
    """An invoice or credit note as Xero holds it (what the sink needs of it)."""

    document_id: str
    number: str
    status: str
    reference: str | None
    total: Decimal | None


@dataclass(frozen=True)
class ElementResult:
    """One document's answer in a batch write."""

    document: XeroDocument | None  # None when refused
    errors: tuple[str, ...]

    @property
    def refused(self) -> bool:
        return self.document is None


@dataclass(frozen=True)
class BatchAnswer:
    results: tuple[ElementResult, ...]
    headers: RateHeaders


@dataclass(frozen=True)
class Documents:
    documents: tuple[XeroDocument, ...]
    headers: RateHeaders


def rate_headers(headers: Mapping[str, str], window_seconds: float = 60.0) -> RateHeaders:
    def number(name: str) -> int | None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
        return int(value) if value is not None and value.strip().isdigit() else None

    return RateHeaders(
        number("X-MinLimit-Remaining"), window_seconds, number("X-DayLimit-Remaining")
    )


def idempotency_key(tenant: str, collection: str, body: str) -> str:
    digest = hashlib.sha256(f"{tenant}\x1f{collection}\x1f{body}".encode()).hexdigest()
    key = f"billsync-{collection.lower()}-{digest[:48]}"
    return key[:MAX_IDEMPOTENCY_KEY]


def _view(collection: str, raw: Mapping[str, Any]) -> XeroDocument | None:
    id_field = "InvoiceID" if collection == "Invoices" else "CreditNoteID"
    number_field = "InvoiceNumber" if collection == "Invoices" else "CreditNoteNumber"
    ident = raw.get(id_field)
    if not isinstance(ident, str) or not ident:
        return None
    total = raw.get("Total")
    return XeroDocument(
        document_id=ident,
        number=str(raw.get(number_field) or ""),
        status=str(raw.get("Status") or ""),
        reference=raw.get("Reference") if isinstance(raw.get("Reference"), str) else None,
        total=total if isinstance(total, Decimal) else None,
    )


def _error_text(status: int, body: Any, raw: str) -> tuple[str, str | None]:
    if isinstance(body, dict):
        if "Message" in body:
            return f"Xero {status}: {body['Message']}", body.get("Type")
        if "Detail" in body or "Title" in body:
            detail = body.get("Detail") or body.get("Title")
            return f"Xero {status}: {detail}", str(detail) if detail else None
        if "error" in body:
            return f"Xero {status}: {body['error']}", str(body["error"])
    return f"Xero {status}: {raw[:200]}", None


class CustomConnectionTokens:
    """Client-credentials access tokens (Xero Custom Connections), kept in memory."""

    def __init__(self, token_url: str, timeout: float = 30.0) -> None:
        self.token_url = token_url
        self.timeout = timeout
        self._tokens: dict[str, tuple[str, float]] = {}  # credential id -> token, expiry
        self._locks = KeyedLocks()  # one fetch per credential at a time
        self.fetched = 0

    async def access_token(self, credential: XeroCredential) -> str:
        held = self._tokens.get(credential.id)
        if held is not None and held[1] - 120 > time.monotonic():
            return held[0]
        async with self._locks.hold(credential.id):
            held = self._tokens.get(credential.id)  # fetched while we waited
            if held is not None and held[1] - 120 > time.monotonic():
                return held[0]
            return await self._fetch(credential)

    async def _fetch(self, credential: XeroCredential) -> str:
        import httpx2
        from authlib.integrations.base_client.errors import OAuthError
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        async with AsyncOAuth2Client(
            client_id=credential.client_id,
            client_secret=credential.client_secret.get_secret_value(),
            token_endpoint_auth_method="client_secret_basic",
            timeout=self.timeout,
        ) as client:
            try:
                token: dict[str, Any] = await client.fetch_token(
                    self.token_url, grant_type="client_credentials"
                )
            except OAuthError as exc:
                raise AuthenticationError(
                    f"Xero refused the custom connection of credential {credential.id!r} "
                    f"({exc.error}): check its client id and secret"
                ) from None
            except (httpx2.HTTPError, ValueError) as exc:
                raise XeroApiError(
                    None, f"Xero identity unreachable: {type(exc).__name__}"
                ) from None
        self.fetched += 1
        access = str(token["access_token"])
        self._tokens[credential.id] = (
            access,
            time.monotonic() + float(token.get("expires_in") or 1800),
        )
        return access


class XeroApi:
    def __init__(
        self,
        credential: XeroCredential,
        *,
        api_base: str,
        refresher: TokenRefresher | None,
        custom: CustomConnectionTokens,
        timeout: float = 30.0,
        window_seconds: float = 60.0,
    ) -> None:
        self.credential = credential
        self.window_seconds = window_seconds  # Xero's "minute" (scaled in benchmarks)
        self.api_base = api_base.rstrip("/")
        self.tenant: str | None = credential.tenant_id
        self._refresher = refresher
        self._custom = custom
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        # The rate headers of the latest accounting answer, 429s included (the sink's
        # limiter learns a spent minute or day from them before the next call).
        self.last_headers: RateHeaders | None = None

    @property
    def is_custom_connection(self) -> bool:
        return self.credential.refresh_token is None and self.credential.access_token is None

    async def _token(self) -> str:
        if self.is_custom_connection:
            return await self._custom.access_token(self.credential)
        if self._refresher is not None:
            return await self._refresher.access_token(self.credential)
        if self.credential.access_token is None:
            raise AuthenticationError(
                f"credential {self.credential.id!r} has no access token and this sink cannot "
                "refresh it (BILLSYNC_SINK_CONTROL_URL unset): connect it again by OAuth"
            )
        return self.credential.access_token.get_secret_value()

    async def _tenant(self, token: str) -> str:
        if self.tenant:
            return self.tenant
        connections = await self.connections(token)
        orgs = [c for c in connections if c.get("tenantType", "ORGANISATION") == "ORGANISATION"]
        if len(orgs) != 1:
            raise AuthenticationError(
                f"credential {self.credential.id!r} names no Xero organisation and "
                f"{len(orgs)} are connected: set its tenantId to one of "
                f"{', '.join(str(o.get('tenantId')) for o in orgs) or 'them'}"
            )
        self.tenant = str(orgs[0]["tenantId"])
        return self.tenant

    async def prepare(self) -> None:
        """Have a valid token and the tenant before a call is counted against the limits:
        a token fetched inside the call would make it reach Xero later than our limiter
        booked it (at a window's edge, Xero would still count the previous burst)."""
        await self._tenant(await self._token())

    async def connections(self, token: str | None = None) -> list[dict[str, Any]]:
        """`GET /connections`: the organisations this token reaches."""
        token = token or await self._token()
        status, body, headers = await self._request(
            "GET", "/connections", headers={"Authorization": f"Bearer {token}"}
        )
        if status != 200 or not isinstance(body, list):
            raise XeroApiError(status, _error_text(status, body, str(body))[0], headers)
        return [c for c in body if isinstance(c, dict)]

    async def _request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        data: str | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            async with self._session.request(
                method, f"{self.api_base}{path}", headers=headers, params=params, data=data
            ) as resp:
                raw = await resp.text()
                answer_headers = dict(resp.headers)
                try:
                    body = loads(raw) if raw else None
                except ValueError:
                    body = None
                return resp.status, body, answer_headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise XeroApiError(None, f"Xero unreachable: {type(exc).__name__}") from exc

    async def _accounting(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: str | None = None,
        key: str | None = None,
    ) -> tuple[Any, dict[str, str]]:
        token = await self._token()
        tenant = await self._tenant(token)
        headers = {
            "Authorization": f"Bearer {token}",
            "xero-tenant-id": tenant,
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        status, answer, answer_headers = await self._request(
            method, ACCOUNTING + path, headers=headers, params=params, data=body
        )
        self.last_headers = rate_headers(answer_headers, self.window_seconds)
        if status != 200:
            message, code = _error_text(status, answer, json.dumps(answer) if answer else "")
            raise XeroApiError(status, message, answer_headers, code)
        return answer, answer_headers

    async def write(self, collection: str, elements: Sequence[Mapping[str, Any]]) -> BatchAnswer:
        """`POST /Invoices` (or `/CreditNotes`) with up to 50 documents: one result each, in
        order."""
        body = dumps({collection: list(elements)})
        key = idempotency_key(self.tenant or self.credential.id, collection, body)
        params = {"summarizeErrors": "false", "unitdp": "4"}
        answer, headers = await self._accounting(
            "POST", f"/{collection}", params=params, body=body, key=key
        )
        raw = answer.get(collection) if isinstance(answer, dict) else None
        if not isinstance(raw, list) or len(raw) != len(elements):
            raise XeroApiError(
                502, f"Xero answered {collection} without one result per document", headers
            )
        results = []
        for item in raw:
            errors = tuple(
                str(e.get("Message", ""))
                for e in item.get("ValidationErrors") or []
                if isinstance(e, dict)
            )
            refused = bool(item.get("HasErrors")) or bool(errors)
            results.append(ElementResult(None if refused else _view(collection, item), errors))
        return BatchAnswer(tuple(results), rate_headers(headers, self.window_seconds))

    async def by_numbers(self, collection: str, numbers: Sequence[str]) -> Documents:
        """The documents with these numbers (one page of 100 at most per call)."""
        if collection == "Invoices":
            params = {"InvoiceNumbers": ",".join(numbers), "unitdp": "4"}
        else:
            clause = " OR ".join(f'CreditNoteNumber=="{n}"' for n in numbers)
            params = {"where": clause, "unitdp": "4"}
        answer, headers = await self._accounting("GET", f"/{collection}", params=params)
        raw = answer.get(collection) if isinstance(answer, dict) else None
        views = [_view(collection, item) for item in raw or [] if isinstance(item, dict)]
        return Documents(
            tuple(v for v in views if v is not None), rate_headers(headers, self.window_seconds)
        )

    async def close(self) -> None:
        await self._session.close()
