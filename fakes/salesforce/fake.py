"""`FakeSalesforce`: a stateful local Salesforce org served by aiohttp.

REST API (`/services/data/vXX.X`, `Authorization: Bearer <session>`):
- `GET /sobjects/{Object}/describe`; `GET /limits`; `GET /query?q=` (the SOQL subset the
  sink uses: SELECT fields FROM object WHERE a = 'x' AND b IN ('y', ...), relationship
  paths, ORDER BY, LIMIT; 2,000 rows a page with `nextRecordsUrl`);
- `PATCH /composite/sobjects/{Object}/{ExternalIdField}` (sObject Collections upsert:
  `{allOrNone, records}`, at most 200 records of that one type, results in request order
  `[{id, success, created, errors}]`); `DELETE /composite/sobjects?ids=&allOrNone=`;
- `PATCH /sobjects/{Object}/{ExternalIdField}/{value}` (one record: 201 created, 200
  updated, 300 with the matching records' URLs when the value matches several);
- `POST /composite` (at most 25 subrequests, at most 5 of them collections or queries,
  `@{ref.path}` references, `allOrNone`), one API call whatever it carries.
Every API answer carries `Sforce-Limit-Info: api-usage=used/limit`; past the daily
allocation, or over the concurrent allowance, the answer is 403 `REQUEST_LIMIT_EXCEEDED`.
An unknown or expired session is 401 `INVALID_SESSION_ID`.

Control (`/_fake/...`, never counted): `GET /_fake/state` (records, usage, stats),
`POST /_fake/expire-sessions`, `POST /_fake/faults`, `POST /_fake/usage`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from aiohttp import web

from fakes.common.serve import ServedApp

from .auth import Authority, ConnectedApp, OAuthError
from .schema import ObjectDef, default_objects
from .store import JSON, RequestError, Store

API_VERSION = "67.0"
MAX_COLLECTION = 200
MAX_SUBREQUESTS = 25
MAX_COLLECTION_SUBREQUESTS = 5
QUERY_PAGE = 2000
_VERSION = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")


@dataclass
class FakeSalesforceConfig:
    daily_limit: int = 100_000
    concurrent_limit: int = 25
    session_seconds: float = 7200.0
    latency: float = 0.0  # seconds every API call takes
    min_version: float = 31.0
    max_version: float = float(API_VERSION)


@dataclass
class _Fault:
    path_prefix: str
    status: int | None
    action: str | None  # None | "drop_after_commit" | "drop_before_commit"
    count: int
    latency: float = 0.0
    code: str | None = None
    message: str | None = None


@dataclass
class Stats:
    api_calls: int = 0  # counted against the daily allocation (admitted calls)
    refused: int = 0  # 403 REQUEST_LIMIT_EXCEEDED answers
    unauthorized: int = 0
    max_concurrent: int = 0
    # Every collection request: {call, scope, method, object, keys}; `call` numbers the API
    # call that carried it (a Composite carries several), `scope` is the session's app.
    calls: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "api_calls": self.api_calls,
            "refused": self.refused,
            "unauthorized": self.unauthorized,
            "max_concurrent": self.max_concurrent,
            "calls": list(self.calls),
        }


def _sf_error(status: int, code: str, message: str, headers: dict[str, str]) -> web.Response:
    return web.json_response(
        [{"message": message, "errorCode": code}], status=status, headers=headers
    )


class FakeSalesforce(ServedApp):
    def __init__(
        self,
        *,
        objects: dict[str, ObjectDef] | None = None,
        clock: Callable[[], float] = time.time,
        **config: Any,
    ) -> None:
        self.config = FakeSalesforceConfig(**config)
        self._clock = clock
        self._offset = 0.0
        self.store = Store(objects or default_objects(), self.now)
        self.auth = Authority(self.now, self.config.session_seconds)
        self.validation_rules: list[JSON] = []
        self.used = 0
        self.active = 0
        self.faults: list[_Fault] = []
        self.stats = Stats()
        self._cursors: dict[str, list[JSON]] = {}
        self._scope = ""
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        self.app.add_routes(
            [
                web.post("/services/oauth2/token", self._token),
                web.get("/services/oauth2/authorize", self._authorize),
                web.route("*", "/services/data/{tail:.*}", self._api),
                web.get("/_fake/state", self._state),
                web.post("/_fake/expire-sessions", self._expire),
                web.post("/_fake/faults", self._fault_route),
                web.post("/_fake/usage", self._usage_route),
            ]
        )
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        url = await super().start(host, port)
        self.auth.audiences.add(url)  # a My Domain login host is an audience too
        return url

    # -- control ---------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock() + self._offset

    def advance_time(self, seconds: float) -> None:
        self._offset += seconds

    def add_app(
        self,
        client_id: str,
        *,
        client_secret: str = "",
        public_key_pem: str | None = None,
        run_as: str | None = None,
    ) -> None:
        self.auth.apps[client_id] = ConnectedApp(client_id, client_secret, public_key_pem, run_as)
        if run_as:
            self.auth.users.add(run_as)

    def add_user(self, username: str) -> None:
        self.auth.users.add(username)

    def authorize(self, client_id: str, user: str) -> str:
        self.auth.users.add(user)
        return self.auth.authorize(client_id, user)

    def expire_sessions(self) -> int:
        return self.auth.expire_sessions()

    def reject(self, obj: str, field_name: str, equals: Any, message: str) -> None:
        """A validation rule: records of `obj` whose field equals the value are refused."""
        self.validation_rules.append(
            {"object": obj, "field": field_name, "equals": equals, "message": message}
        )

    def inject(
        self,
        *,
        status: int | None = None,
        action: str | None = None,
        count: int = 1,
        path_prefix: str = "/services/data/",
        latency: float = 0.0,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """The next `count` API calls under `path_prefix`: answer `status` (5xx:
        SERVER_UNAVAILABLE, 403: REQUEST_LIMIT_EXCEEDED, 401: INVALID_SESSION_ID, or `code`),
        or `action` "drop_after_commit" (do the work, then drop the connection) or
        "drop_before_commit"; `latency` seconds first."""
        self.faults.append(_Fault(path_prefix, status, action, count, latency, code, message))

    def lock(self, record_id: str) -> None:
        """Lock a record as an approval process does: updates are refused with
        ENTITY_IS_LOCKED, and so are changes to its master-detail children."""
        self.store.locked.add(record_id)

    def seed(self, obj: str, **values: Any) -> str:
        """Create a record directly (an Account the sink will parent bills to)."""
        o = self.store.obj(obj)
        rid = self.store.new_id(o)
        self.store.insert(o, {"Id": rid, **values})
        return rid

    def records(self, obj: str) -> list[JSON]:
        return list(self.store.table(self.store.obj(obj).name).values())

    def record(self, obj: str, field_name: str, value: str) -> JSON | None:
        found = [r for r in self.records(obj) if r.get(field_name) == value]
        return found[0] if found else None

    def reset(self) -> None:
        self.store.clear()
        self.validation_rules.clear()
        self.used = 0
        self.stats = Stats()
        self.faults.clear()

    def state(self) -> dict[str, Any]:
        return {
            "records": {name: list(t.values()) for name, t in self.store.records.items()},
            "usage": {"used": self.used, "limit": self.config.daily_limit},
            "stats": self.stats.to_json(),
            "grants": list(self.auth.grants),
        }

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def _expire(self, request: web.Request) -> web.Response:
        return web.json_response({"expired": self.expire_sessions()})

    async def _fault_route(self, request: web.Request) -> web.Response:
        spec = await request.json()
        self.inject(**spec)
        return web.json_response({"faults": len(self.faults)})

    async def _usage_route(self, request: web.Request) -> web.Response:
        spec = await request.json()
        self.used = int(spec.get("used", self.used))
        if "limit" in spec:
            self.config.daily_limit = int(spec["limit"])
        return web.json_response({"used": self.used, "limit": self.config.daily_limit})

    # -- OAuth -----------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        basic = None
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            basic = (user, secret)
        try:
            body = self.auth.token(form, basic, self.url or "")
        except OAuthError as exc:
            return web.json_response(exc.body(), status=exc.status)
        return web.json_response(body)

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            app = self.auth.apps.get(query.get("client_id", ""))
            if app is None:
                raise OAuthError(400, "invalid_client_id", "client identifier invalid")
            user = query.get("login_hint") or next(iter(sorted(self.auth.users)), "")
            code = self.auth.authorize(app.client_id, user)
        except OAuthError as exc:
            return web.json_response(exc.body(), status=exc.status)
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        raise web.HTTPFound(f"{query.get('redirect_uri', '')}?{urlencode(params)}")

    # -- the API ---------------------------------------------------------------------------

    def _limit_headers(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.used}/{self.config.daily_limit}"}

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self.faults:
            if fault.count > 0 and path.startswith(fault.path_prefix):
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def _api(self, request: web.Request) -> web.StreamResponse:
        match = _VERSION.match(request.path)
        if request.path.rstrip("/") == "/services/data":
            return web.json_response(
                [{"version": API_VERSION, "url": f"/services/data/v{API_VERSION}"}]
            )
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        session = self.auth.session(token)
        if session is None:
            self.stats.unauthorized += 1
            return _sf_error(
                401, "INVALID_SESSION_ID", "Session expired or invalid", self._limit_headers()
            )
        if self.used >= self.config.daily_limit:
            self.stats.refused += 1
            return _sf_error(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
                self._limit_headers(),
            )
        if self.active >= self.config.concurrent_limit:
            self.stats.refused += 1
            return _sf_error(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentPerOrgLongTxn Limit exceeded.",
                self._limit_headers(),
            )
        self.active += 1
        self.stats.max_concurrent = max(self.stats.max_concurrent, self.active)
        try:
            self.used += 1
            self.stats.api_calls += 1
            fault = self._take_fault(request.path)
            delay = self.config.latency + (fault.latency if fault else 0.0)
            if delay > 0:
                await asyncio.sleep(delay)
            if fault is not None and fault.action == "drop_before_commit":
                return self._drop(request)
            if fault is not None and fault.status is not None:
                code, message = _injected(fault)
                return _sf_error(fault.status, code, message, self._limit_headers())
            if match is None:
                return _sf_error(404, "NOT_FOUND", "The requested resource does not exist", {})
            version = float(match.group(1))
            if not self.config.min_version <= version <= self.config.max_version:
                return _sf_error(404, "NOT_FOUND", "The requested resource does not exist", {})
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return _sf_error(
                    400, "JSON_PARSER_ERROR", "Unexpected character in request body", {}
                )
            self._scope = session.client_id  # no await until the dispatch returns
            status, answer = self._dispatch(
                request.method, match.group(2) or "/", dict(request.query), body, top=True
            )
            if fault is not None and fault.action == "drop_after_commit":
                return self._drop(request)
            headers = self._limit_headers()
            if status == 204:
                return web.Response(status=204, headers=headers)
            return web.json_response(answer, status=status, headers=headers)
        finally:
            self.active -= 1

    def _drop(self, request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("dropped by the local Salesforce")

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], body: Any, *, top: bool
    ) -> tuple[int, Any]:
        """(status, JSON answer) for one API request or one composite subrequest."""
        parts = [p for p in path.split("/") if p]
        try:
            if method == "POST" and parts == ["composite"] and top:
                return self._composite(body)
            if parts[:2] == ["composite", "sobjects"]:
                if method == "PATCH" and len(parts) == 4:
                    return 200, self._collection_upsert(parts[2], parts[3], body)
                if method == "DELETE" and len(parts) == 2:
                    return 200, self._collection_delete(query)
            if method == "GET" and parts == ["limits"]:
                return 200, {
                    "DailyApiRequests": {
                        "Max": self.config.daily_limit,
                        "Remaining": max(0, self.config.daily_limit - self.used),
                    }
                }
            if method == "GET" and parts and parts[0] == "query":
                if len(parts) == 2:
                    return 200, self._query_more(parts[1])
                return 200, self._query(query.get("q", ""))
            if parts[:1] == ["sobjects"] and len(parts) == 3 and parts[2] == "describe":
                return 200, self.store.obj(parts[1]).describe()
            if parts[:1] == ["sobjects"] and len(parts) == 4 and method == "PATCH":
                return self._single_upsert(parts[1], parts[2], parts[3], body)
        except RequestError as exc:
            return exc.status, exc.body()
        return 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]

    def _ext_field(self, obj: ObjectDef, name: str) -> Any:
        fdef = obj.field_named(name)
        if fdef is None or not fdef.external_id:
            raise RequestError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {name}",
            )
        return fdef

    def _collection_upsert(self, obj_name: str, field_name: str, body: Any) -> list[JSON]:
        obj = self.store.obj(obj_name)
        ext = self._ext_field(obj, field_name)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise RequestError(400, "JSON_PARSER_ERROR", "records is required")
        records = body["records"]
        if len(records) > MAX_COLLECTION:
            raise RequestError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        for rec in records:
            kind = rec.get("attributes", {}).get("type") if isinstance(rec, dict) else None
            if kind is None or kind.lower() != obj.name.lower():
                raise RequestError(
                    400,
                    "INVALID_TYPE",
                    f"records must all be of type {obj.name} in an upsert collection",
                )
        all_or_none = bool(body.get("allOrNone", False))
        snapshot = self.store.snapshot() if all_or_none else None
        seen: set[str] = set()
        results: list[JSON] = []
        for rec in records:
            key = str(rec.get(ext.name, ""))
            if key and key in seen:
                results.append(
                    {
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "DUPLICATE_VALUE",
                                "message": f"Duplicate external id specified: {key}",
                                "fields": [ext.name],
                            }
                        ],
                    }
                )
                continue
            seen.add(key)
            result, _ = self.store.upsert(obj, ext, rec, self.validation_rules)
            results.append(result)
        self.stats.calls.append(
            {
                "call": self.stats.api_calls,
                "scope": self._scope,
                "method": "PATCH",
                "object": obj.name,
                "keys": [str(r.get(ext.name, "")) for r in records],
            }
        )
        if snapshot is not None and not all(r["success"] for r in results):
            self.store.restore(snapshot)
            rolled = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the "
                "request was using AllOrNone header",
                "fields": [],
            }
            results = [
                r if not r["success"] else {"success": False, "errors": [rolled]} for r in results
            ]
        return results

    def _collection_delete(self, query: dict[str, str]) -> list[JSON]:
        ids = [i for i in query.get("ids", "").split(",") if i]
        if len(ids) > MAX_COLLECTION:
            raise RequestError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        self.stats.calls.append(
            {"call": self.stats.api_calls, "scope": self._scope, "method": "DELETE", "keys": ids}
        )
        return [self.store.delete(i) for i in ids]

    def _single_upsert(
        self, obj_name: str, field_name: str, value: str, body: Any
    ) -> tuple[int, Any]:
        obj = self.store.obj(obj_name)
        ext = self._ext_field(obj, field_name)
        matches = self.store.find(obj, ext, value)
        if len(matches) > 1:
            return 300, [
                f"/services/data/v{API_VERSION}/sobjects/{obj.name}/{m['Id']}" for m in matches
            ]
        record = {**(body if isinstance(body, dict) else {}), ext.name: value}
        result, _ = self.store.upsert(obj, ext, record, self.validation_rules)
        if not result["success"]:
            return 400, [
                {"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]}
                for e in result["errors"]
            ]
        created = result["created"]
        return (201 if created else 200), {
            "id": result["id"],
            "success": True,
            "errors": [],
            "created": created,
        }

    def _query(self, soql: str) -> JSON:
        rows = self.store.query(soql)
        return self._page(rows)

    def _page(self, rows: list[JSON]) -> JSON:
        page, rest = rows[:QUERY_PAGE], rows[QUERY_PAGE:]
        answer: JSON = {"totalSize": len(rows), "done": not rest, "records": page}
        if rest:
            locator = f"01g{len(self._cursors):012d}-{QUERY_PAGE}"
            self._cursors[locator] = rest
            answer["nextRecordsUrl"] = f"/services/data/v{API_VERSION}/query/{locator}"
        return answer

    def _query_more(self, locator: str) -> JSON:
        rows = self._cursors.pop(locator, None)
        if rows is None:
            raise RequestError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(rows)

    # -- composite -------------------------------------------------------------------------

    def _composite(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
            raise RequestError(400, "JSON_PARSER_ERROR", "compositeRequest is required")
        subs = body["compositeRequest"]
        if len(subs) > MAX_SUBREQUESTS:
            raise RequestError(
                400,
                "INVALID_REQUEST",
                f"A composite request can have at most {MAX_SUBREQUESTS} subrequests",
            )
        heavy = 0
        for sub in subs:
            url = str(sub.get("url", ""))
            if "/composite/sobjects" in url or "/query" in url:
                heavy += 1
        if heavy > MAX_COLLECTION_SUBREQUESTS:
            raise RequestError(
                400,
                "INVALID_REQUEST",
                "A composite request can have at most 5 sObject Collections or query subrequests",
            )
        all_or_none = bool(body.get("allOrNone", False))
        snapshot = self.store.snapshot() if all_or_none else None
        answers: dict[str, Any] = {}
        out: list[JSON] = []
        failed = False
        halted = [
            {
                "errorCode": "PROCESSING_HALTED",
                "message": "The transaction was rolled back since another operation in the "
                "same transaction failed.",
            }
        ]
        for sub in subs:
            ref = str(sub.get("referenceId", ""))
            if failed and all_or_none:
                out.append(
                    {"body": halted, "httpHeaders": {}, "httpStatusCode": 400, "referenceId": ref}
                )
                continue
            try:
                url = _resolve(str(sub.get("url", "")), answers)
                sub_body = _resolve_json(sub.get("body"), answers)
            except KeyError as exc:
                out.append(
                    {
                        "body": [
                            {
                                "errorCode": "PROCESSING_HALTED",
                                "message": "Invalid reference specified. No value for "
                                f"{exc.args[0]} found in the previous responses.",
                            }
                        ],
                        "httpHeaders": {},
                        "httpStatusCode": 400,
                        "referenceId": ref,
                    }
                )
                failed = True
                continue
            split = urlsplit(url)
            match = _VERSION.match(split.path)
            if match is None:
                status, answer = (
                    404,
                    [
                        {
                            "errorCode": "NOT_FOUND",
                            "message": "The requested resource does not exist",
                        }
                    ],
                )
            else:
                query = {k: v[-1] for k, v in parse_qs(split.query).items()}
                status, answer = self._dispatch(
                    str(sub.get("method", "GET")).upper(),
                    match.group(2) or "/",
                    query,
                    sub_body,
                    top=False,
                )
            if status >= 400:
                failed = True
            answers[ref] = answer
            out.append(
                {"body": answer, "httpHeaders": {}, "httpStatusCode": status, "referenceId": ref}
            )
        if failed and snapshot is not None:
            self.store.restore(snapshot)
            out = [
                o if o["httpStatusCode"] >= 400 else {**o, "body": halted, "httpStatusCode": 400}
                for o in out
            ]
        return 200, {"compositeResponse": out}


def _injected(fault: _Fault) -> tuple[str, str]:
    status = fault.status or 500
    if status == 403:
        code, message = "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."
    elif status == 401:
        code, message = "INVALID_SESSION_ID", "Session expired or invalid"
    elif status >= 500:
        code, message = "SERVER_UNAVAILABLE", "Injected failure from the local Salesforce."
    else:
        code, message = "UNKNOWN_EXCEPTION", "Injected failure from the local Salesforce."
    return fault.code or code, fault.message or message


_REF = re.compile(r"@\{([\w]+)((?:\.\w+|\[\d+\])*)\}")


def _lookup(answers: dict[str, Any], ref: str, path: str) -> Any:
    if ref not in answers:
        raise KeyError(ref)
    value = answers[ref]
    for part in re.findall(r"\.(\w+)|\[(\d+)\]", path):
        name, index = part
        if name:
            value = value.get(name) if isinstance(value, dict) else None
        else:
            value = (
                value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
            )
        if value is None:
            raise KeyError(f"{ref}{path}")
    return value


def _resolve(text: str, answers: dict[str, Any]) -> str:
    return _REF.sub(lambda m: str(_lookup(answers, m.group(1), m.group(2))), text)


def _resolve_json(value: Any, answers: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return _resolve(value, answers)
    if isinstance(value, list):
        return [_resolve_json(v, answers) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_json(v, answers) for k, v in value.items()}
    return value
