"""`SalesforceApi`: the org's REST API over aiohttp, one method per request, answering small
frozen views.

Sessions: the connected app's flow gives an access token and the `instance_url` every API
call goes to (JWT bearer with the operator's private key; client credentials at the My
Domain token endpoint; the web-server flow's refresh token). Salesforce says nothing about
a session's lifetime (no `expires_in`): a session is used until a call answers 401
`INVALID_SESSION_ID`, then the client authenticates again once and repeats that call (a
401 means the call did nothing). The refresh token does not rotate and JWT bearer has
none, so a new session is never something to persist: it lives in this client only.

Limits: every answer's `Sforce-Limit-Info: api-usage=used/limit` is kept (`usage`) and
reported as a metric (`report_quota`, window `day`); `usage_pause` turns it into a pause
before each call once most of the org's daily allocation is spent, so the sink slows down
before Salesforce refuses
(403 `REQUEST_LIMIT_EXCEEDED`, which is a rate limit, not an authorization problem). At most
`concurrent` calls are in flight per org.

Errors leave as `SalesforceApiError` (an HTTP status and Salesforce's error array) or
`SalesforceAuthError` (the token endpoint's `error`/`error_description`); neither carries a
token, an assertion or a key."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from shared.credentials.models import SalesforceCredential
from shared.sinks.metrics import report_quota

from .assertion import AssertionKeyError, jwt_assertion

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_PATH = "/services/oauth2/token"
CONCURRENT_REQUESTS = 25  # Salesforce's long-running concurrent allowance per org
# Stop before the allocation is gone: the org's people and other integrations share it.
USAGE_SLOW_FROM = 0.80
USAGE_STOP_AT = 0.98
DAY_SECONDS = 86_400.0
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


@dataclass(frozen=True)
class ApiUsage:
    used: int
    limit: int

    @property
    def share(self) -> float:
        return self.used / self.limit if self.limit else 0.0


def parse_limit_info(value: str | None) -> ApiUsage | None:
    match = _LIMIT_INFO.search(value or "")
    return ApiUsage(int(match.group(1)), int(match.group(2))) if match else None


def usage_pause(usage: ApiUsage | None) -> float | None:
    """Seconds to wait before the next call: 0 below 80 % of the allocation; above it the
    allocation left before 98 % is spread over a day; None at 98 % (no call: wait for the
    rolling window to free some)."""
    if usage is None or usage.limit <= 0 or usage.share < USAGE_SLOW_FROM:
        return 0.0
    left = usage.limit * USAGE_STOP_AT - usage.used
    if left < 1:
        return None
    return DAY_SECONDS / left


class SalesforceApiError(Exception):
    def __init__(
        self, status: int, errors: tuple[Mapping[str, Any], ...], headers: Mapping[str, str]
    ) -> None:
        self.status = status
        self.errors = errors
        self.headers = headers
        first = errors[0] if errors else {}
        self.code = str(first.get("errorCode") or first.get("statusCode") or "")
        text = str(first.get("message") or "")
        super().__init__(f"Salesforce {status} {self.code}: {text}".strip())


class SalesforceAuthError(Exception):
    """The token endpoint refused (`status` 400/401) or could not be reached (None)."""

    def __init__(self, status: int | None, error: str, description: str) -> None:
        self.status, self.error, self.description = status, error, description
        super().__init__(f"Salesforce login refused: {error}: {description}")


class UsageExhaustedError(Exception):
    """Most of the org's daily API allocation is spent; no call was made."""

    def __init__(self, usage: ApiUsage) -> None:
        self.usage = usage
        super().__init__(
            f"Salesforce API usage is {usage.used}/{usage.limit}; billsync keeps the last "
            f"{100 - int(USAGE_STOP_AT * 100)} % for the org's other users and waits"
        )


@dataclass(frozen=True)
class Session:
    access_token: str
    instance_url: str
    issued_at: str


@dataclass(frozen=True)
class SubAnswer:
    reference_id: str
    status: int
    body: Any  # a list of results, a query page, or an error array


@dataclass(frozen=True)
class CompositeAnswer:
    answers: tuple[SubAnswer, ...]

    def by_reference(self) -> dict[str, SubAnswer]:
        return {a.reference_id: a for a in self.answers}


@dataclass(frozen=True)
class QueryPage:
    records: tuple[Mapping[str, Any], ...]
    next_url: str | None


def jwt_audience(login_url: str) -> str:
    """The JWT bearer `aud`: Salesforce accepts only its login hosts (or an Experience Cloud
    site's URL), also when the token is requested at a My Domain: production and My Domain
    -> https://login.salesforce.com; a sandbox (test., *.sandbox.my.salesforce.com) ->
    https://test.salesforce.com; any other host is taken as the audience itself."""
    parts = urlsplit(login_url)
    host = (parts.hostname or "").lower()
    if host == "test.salesforce.com" or host.endswith(".sandbox.my.salesforce.com"):
        return "https://test.salesforce.com"
    if host == "login.salesforce.com" or host.endswith(".my.salesforce.com"):
        return "https://login.salesforce.com"
    return login_url.rstrip("/")


class SalesforceApi:
    def __init__(
        self,
        credential: SalesforceCredential,
        *,
        api_version: str = "v67.0",
        timeout: float = 60.0,
        concurrent: int = CONCURRENT_REQUESTS,
        clock: Callable[[], float] = time.time,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.credential = credential
        self.api_version = api_version
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http = session
        self._own_http = session is None
        self._gate = asyncio.Semaphore(concurrent)
        self._auth_lock = asyncio.Lock()
        self._clock = clock
        self.session: Session | None = None
        self.usage: ApiUsage | None = None
        self.logins = 0  # sessions obtained (tests and metrics)
        self.api_calls = 0

    # -- plumbing --------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
            self._own_http = True
        return self._http

    async def close(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.close()
        self._http = None

    @property
    def base(self) -> str:
        return f"/services/data/{self.api_version}"

    # -- authentication --------------------------------------------------------------------

    def _token_form(self) -> tuple[dict[str, str], aiohttp.BasicAuth | None]:
        c = self.credential
        secret = c.client_secret.get_secret_value() if c.client_secret else None
        if c.grant_type == "JWT_BEARER":
            if c.private_key is None or not c.username:
                raise SalesforceAuthError(
                    None,
                    "invalid_credential",
                    f"credential {c.id} uses JWT bearer but has no private key or username",
                )
            try:
                assertion = jwt_assertion(
                    client_id=c.client_id,
                    username=c.username,
                    audience=jwt_audience(c.login_url),
                    private_key_pem=c.private_key.get_secret_value(),
                    now=self._clock(),
                )
            except AssertionKeyError as exc:
                raise SalesforceAuthError(None, "invalid_credential", str(exc)) from None
            return {"grant_type": JWT_GRANT, "assertion": assertion}, None
        if c.grant_type == "CLIENT_CREDENTIALS":
            if not secret:
                raise SalesforceAuthError(
                    None,
                    "invalid_credential",
                    f"credential {c.id} uses client credentials but has no client secret",
                )
            return {"grant_type": "client_credentials"}, aiohttp.BasicAuth(c.client_id, secret)
        if c.refresh_token is None:
            raise SalesforceAuthError(
                None,
                "invalid_credential",
                f"credential {c.id} has no refresh token; connect it again by OAuth",
            )
        form = {
            "grant_type": "refresh_token",
            "refresh_token": c.refresh_token.get_secret_value(),
            "client_id": c.client_id,
        }
        if secret:
            form["client_secret"] = secret
        return form, None

    async def authenticate(self) -> Session:
        form, basic = self._token_form()
        url = self.credential.login_url.rstrip("/") + TOKEN_PATH
        try:
            async with self._client().post(url, data=form, auth=basic) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SalesforceAuthError(None, "unreachable", type(exc).__name__) from None
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = {}
        if status >= 500:
            raise SalesforceAuthError(None, "unavailable", f"the token endpoint answered {status}")
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = str(body.get("error", "invalid_grant")) if isinstance(body, dict) else ""
            description = str(body.get("error_description", "")) if isinstance(body, dict) else ""
            raise SalesforceAuthError(status, error, description)
        self.logins += 1
        self.session = Session(
            str(body["access_token"]), str(body["instance_url"]), str(body.get("issued_at", ""))
        )
        return self.session

    async def _current_session(self, stale: Session | None) -> Session:
        async with self._auth_lock:
            # Another call may have logged in again while this one waited.
            if self.session is not None and self.session is not stale:
                return self.session
            return await self.authenticate()

    # -- requests --------------------------------------------------------------------------

    def _observe(self, headers: Mapping[str, str]) -> None:
        usage = parse_limit_info(headers.get("Sforce-Limit-Info"))
        if usage is not None:
            self.usage = usage
            # billsync_sink_provider_quota_remaining{destination="salesforce",window="day"}
            report_quota(
                "salesforce", self.credential.id, "day", usage.limit - usage.used, usage.limit
            )

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """One API call (path from `/services/data/...`); JSON answer or SalesforceApiError.
        A 401 INVALID_SESSION_ID logs in again once and repeats the call."""
        pause = usage_pause(self.usage)
        if pause is None and self.usage is not None:
            raise UsageExhaustedError(self.usage)
        if pause:
            await asyncio.sleep(pause)
        session = self.session or await self._current_session(None)
        for repeat in (False, True):
            status, answer, headers = await self._send(session, method, path, body)
            if status == 401 and not repeat:
                session = await self._current_session(session)
                continue
            if status >= 300:
                errors = (
                    tuple(e for e in answer if isinstance(e, dict))
                    if isinstance(answer, list)
                    else ()
                )
                raise SalesforceApiError(status, errors, headers)
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self, session: Session, method: str, path: str, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"Authorization": f"Bearer {session.access_token}"}
        async with self._gate:
            self.api_calls += 1
            async with self._client().request(
                method, session.instance_url.rstrip("/") + path, json=body, headers=headers
            ) as resp:
                text = await resp.text()
                answer_headers = dict(resp.headers)
                status = resp.status
        self._observe(answer_headers)
        try:
            answer = json.loads(text) if text else None
        except ValueError:
            answer = [{"errorCode": "UNKNOWN_EXCEPTION", "message": f"not JSON ({status})"}]
        return status, answer, answer_headers

    # -- endpoints -------------------------------------------------------------------------

    async def composite(self, body: Mapping[str, Any]) -> CompositeAnswer:
        answer = await self.request("POST", f"{self.base}/composite", body)
        parts = answer.get("compositeResponse", []) if isinstance(answer, dict) else []
        return CompositeAnswer(
            tuple(
                SubAnswer(str(p.get("referenceId")), int(p.get("httpStatusCode", 0)), p.get("body"))
                for p in parts
                if isinstance(p, dict)
            )
        )

    async def query_more(self, next_url: str) -> QueryPage:
        return query_page(await self.request("GET", next_url))

    async def describe(self, object_name: str) -> Mapping[str, Any]:
        answer = await self.request("GET", f"{self.base}/sobjects/{object_name}/describe")
        return answer if isinstance(answer, dict) else {}


def query_page(body: Any) -> QueryPage:
    if not isinstance(body, dict):
        return QueryPage((), None)
    records = tuple(r for r in body.get("records", []) if isinstance(r, dict))
    next_url = body.get("nextRecordsUrl") if not body.get("done", True) else None
    return QueryPage(records, str(next_url) if next_url else None)
