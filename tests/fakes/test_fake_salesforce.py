"""The local Salesforce behaves like an org: describe, external-id upserts, Composite,
deletes, SOQL, validation errors, the three OAuth flows, sessions, limits and faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fakes.salesforce import FakeSalesforce
from services.salesforce_sink.assertion import jwt_assertion
from tests.support.salesforce import BILL, BILL_ID, LINE, LINE_ID, rsa_keypair

V = "/services/data/v67.0"
USER = "integration@example.com"


PRIVATE, PUBLIC = rsa_keypair()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSalesforce]:
    fake = FakeSalesforce(daily_limit=1000)
    fake.add_app("app-1", client_secret="s3cret", public_key_pem=PUBLIC, run_as=USER)
    fake.add_user(USER)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http(fake: FakeSalesforce) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=fake.url) as session:
        token = await _token(session, {"grant_type": "client_credentials"}, basic=True)
        session.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield session


async def _token(
    session: aiohttp.ClientSession, form: dict[str, str], basic: bool = False
) -> dict[str, Any]:
    auth = aiohttp.BasicAuth("app-1", "s3cret") if basic else None
    async with session.post("/services/oauth2/token", data=form, auth=auth) as resp:
        body: dict[str, Any] = await resp.json()
        body["_status"] = resp.status
        return body


def _bill(ext: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": BILL}, BILL_ID: ext, "Name": ext, **fields}


def _line(ext: str, bill: str, **fields: Any) -> dict[str, Any]:
    return {
        "attributes": {"type": LINE},
        LINE_ID: ext,
        "Name": ext,
        "Bill__r": {BILL_ID: bill},
        **fields,
    }


async def _upsert(
    http: aiohttp.ClientSession, obj: str, ext: str, records: list[Any], all_or_none: bool = False
) -> tuple[int, Any, str]:
    body = {"allOrNone": all_or_none, "records": records}
    async with http.patch(f"{V}/composite/sobjects/{obj}/{ext}", json=body) as resp:
        return resp.status, await resp.json(), resp.headers.get("Sforce-Limit-Info", "")


# -- objects and upserts ------------------------------------------------------------------


async def test_describe_lists_fields_with_external_ids(http: aiohttp.ClientSession) -> None:
    async with http.get(f"{V}/sobjects/{BILL}/describe") as resp:
        body = await resp.json()
    fields = {f["name"]: f for f in body["fields"]}
    assert fields[BILL_ID]["externalId"] and fields[BILL_ID]["unique"]
    assert fields["Account__c"]["referenceTo"] == ["Account"]
    assert fields["Bill_Total__c"]["type"] == "double"
    async with http.get(f"{V}/sobjects/Nope__c/describe") as resp:
        assert resp.status == 404
        assert (await resp.json())[0]["errorCode"] == "NOT_FOUND"


async def test_upsert_creates_then_updates_in_request_order(
    fake: FakeSalesforce, http: aiohttp.ClientSession
) -> None:
    status, results, limit = await _upsert(
        http, BILL, BILL_ID, [_bill("b1", Bill_Total__c="10.5"), _bill("b2")]
    )
    assert status == 200
    assert [r["created"] for r in results] == [True, True]
    assert limit == "api-usage=1/1000"
    status, results, limit = await _upsert(
        http, BILL, BILL_ID, [_bill("b2", Status__c="APPROVED"), _bill("b1")]
    )
    assert [r["created"] for r in results] == [False, False]
    assert limit == "api-usage=2/1000"
    record = fake.record(BILL, BILL_ID, "b2")
    assert record is not None and record["Status__c"] == "APPROVED"
    assert results[0]["id"] == record["Id"] and len(record["Id"]) == 18
    b1 = fake.record(BILL, BILL_ID, "b1")
    assert b1 is not None and b1["Bill_Total__c"] == "10.5000"
    assert len(fake.records(BILL)) == 2


async def test_record_errors_have_salesforce_shape_and_fail_only_that_record(
    fake: FakeSalesforce, http: aiohttp.ClientSession
) -> None:
    fake.reject(BILL, "Status__c", "BAD", "Status BAD is not allowed")
    status, results, _ = await _upsert(
        http,
        BILL,
        BILL_ID,
        [
            _bill("ok"),
            _bill("long", Currency__c="TOOLONG"),
            _bill("rule", Status__c="BAD"),
            _bill("huge", Bill_Total__c="100000000000000"),
            {"attributes": {"type": BILL}, BILL_ID: "noname"},
            _bill("ok"),
        ],
    )
    assert status == 200
    codes = [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]
    assert codes == [
        None,
        "STRING_TOO_LONG",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "NUMBER_OUTSIDE_VALID_RANGE",
        "REQUIRED_FIELD_MISSING",
        "DUPLICATE_VALUE",
    ]
    assert results[1]["errors"][0]["fields"] == ["Currency__c"]
    assert [r[BILL_ID] for r in fake.records(BILL)] == ["ok"]


async def test_all_or_none_rolls_back_every_record(
    fake: FakeSalesforce, http: aiohttp.ClientSession
) -> None:
    _, results, _ = await _upsert(
        http, BILL, BILL_ID, [_bill("a"), _bill("b", Currency__c="TOOLONG")], all_or_none=True
    )
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert fake.records(BILL) == []


async def test_request_level_errors(http: aiohttp.ClientSession) -> None:
    status, body, _ = await _upsert(http, BILL, BILL_ID, [_bill("x", Bogus__c="1")])
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD"
    status, body, _ = await _upsert(http, BILL, BILL_ID, [_bill(f"b{i}") for i in range(201)])
    assert status == 400 and body[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    status, body, _ = await _upsert(http, BILL, "Name", [_bill("x")])
    assert status == 404
    status, body, _ = await _upsert(http, BILL, BILL_ID, [_line("l", "x")])
    assert status == 400 and body[0]["errorCode"] == "INVALID_TYPE"
    status, body, _ = await _upsert(http, BILL, BILL_ID, [_bill("x", Bill_Date__c="soon")])
    assert status == 400 and body[0]["errorCode"] == "JSON_PARSER_ERROR"


async def test_children_point_at_parents_by_external_id(
    fake: FakeSalesforce, http: aiohttp.ClientSession
) -> None:
    account = fake.seed("Account", Name="Acme", Billsync_Account_Id__c="acc-1")
    await _upsert(
        http, BILL, BILL_ID, [_bill("b1", Account__r={"Billsync_Account_Id__c": "acc-1"})]
    )
    _, results, _ = await _upsert(http, LINE, LINE_ID, [_line("l1", "b1"), _line("l2", "nope")])
    assert results[0]["success"]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert "Foreign key external ID: nope not found" in results[1]["errors"][0]["message"]
    bill = fake.record(BILL, BILL_ID, "b1")
    line = fake.record(LINE, LINE_ID, "l1")
    assert bill is not None and line is not None
    assert bill["Account__c"] == account and line["Bill__c"] == bill["Id"]
    _, results, _ = await _upsert(
        http,
        BILL,
        BILL_ID,
        [_bill("b2", Account__c="001000000000000"), _bill("b3", Account__c="x")],
    )
    assert [r["errors"][0]["statusCode"] for r in results] == [
        "INVALID_CROSS_REFERENCE_KEY",
        "MALFORMED_ID",
    ]


async def test_multiple_matches_answer_300(
    fake: FakeSalesforce, http: aiohttp.ClientSession
) -> None:
    fake.seed("Account", Name="A", Billsync_Account_Id__c="dup")
    fake.seed("Account", Name="B", Billsync_Account_Id__c="dup")
    async with http.patch(
        f"{V}/sobjects/Account/Billsync_Account_Id__c/dup", json={"Name": "C"}
    ) as resp:
        assert resp.status == 300
        assert len(await resp.json()) == 2
    async with http.patch(
        f"{V}/sobjects/Account/Billsync_Account_Id__c/new", json={"Name": "N"}
    ) as resp:
        assert resp.status == 201


async def test_composite_carries_bill_and_lines_in_one_call(
    fake: FakeSalesforce, http: aiohttp.ClientSession
) -> None:
    body: dict[str, Any] = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "PATCH",
                "url": f"{V}/composite/sobjects/{BILL}/{BILL_ID}",
                "referenceId": "bills",
                "body": {"allOrNone": False, "records": [_bill("b1")]},
            },
            {
                "method": "PATCH",
                "url": f"{V}/composite/sobjects/{LINE}/{LINE_ID}",
                "referenceId": "lines",
                "body": {"allOrNone": False, "records": [_line("l1", "b1"), _line("l2", "b1")]},
            },
            {
                "method": "GET",
                "url": f"{V}/query?q=SELECT+Id,{LINE_ID}+FROM+{LINE}"
                f"+WHERE+Bill__r.{BILL_ID}+IN+('b1')",
                "referenceId": "existing",
            },
        ],
    }
    async with http.post(f"{V}/composite", json=body) as resp:
        answer = await resp.json()
        assert resp.headers["Sforce-Limit-Info"] == "api-usage=1/1000"
    parts = {p["referenceId"]: p for p in answer["compositeResponse"]}
    assert [r["created"] for r in parts["lines"]["body"]] == [True, True]
    assert parts["existing"]["body"]["totalSize"] == 2
    assert fake.stats.api_calls == 1
    too_many = {"compositeRequest": [body["compositeRequest"][2]] * 6}
    async with http.post(f"{V}/composite", json=too_many) as resp:
        assert resp.status == 400


async def test_collections_delete(fake: FakeSalesforce, http: aiohttp.ClientSession) -> None:
    await _upsert(http, BILL, BILL_ID, [_bill("b1")])
    _, results, _ = await _upsert(http, LINE, LINE_ID, [_line("l1", "b1"), _line("l2", "b1")])
    ids = ",".join([results[0]["id"], "a0C000000000000"])
    async with http.delete(f"{V}/composite/sobjects", params={"ids": ids}) as resp:
        out = await resp.json()
    assert out[0]["success"] and not out[1]["success"]
    assert [r[LINE_ID] for r in fake.records(LINE)] == ["l2"]


async def test_query_pages_with_next_records_url(
    fake: FakeSalesforce, http: aiohttp.ClientSession
) -> None:
    for i in range(2100):
        fake.seed("Account", Name=f"A{i}", Billsync_Account_Id__c=f"acc-{i}")
    async with http.get(f"{V}/query", params={"q": "SELECT Id FROM Account"}) as resp:
        first = await resp.json()
    assert first["totalSize"] == 2100 and not first["done"] and len(first["records"]) == 2000
    async with http.get(first["nextRecordsUrl"]) as resp:
        second = await resp.json()
    assert second["done"] and len(second["records"]) == 100


# -- OAuth and sessions -------------------------------------------------------------------


async def test_jwt_bearer(fake: FakeSalesforce) -> None:
    async with aiohttp.ClientSession(base_url=fake.url) as session:

        def assertion(**over: Any) -> str:
            args: dict[str, Any] = {
                "client_id": "app-1",
                "username": USER,
                "audience": "https://test.salesforce.com",
                "private_key_pem": PRIVATE,
                "now": time.time(),
            }
            return jwt_assertion(**(args | over))

        grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
        ok = await _token(session, {"grant_type": grant, "assertion": assertion()})
        assert ok["_status"] == 200 and ok["instance_url"] == fake.url
        assert "expires_in" not in ok and "refresh_token" not in ok and ok["issued_at"]
        other_key, _ = rsa_keypair()
        for bad, why in [
            (assertion(private_key_pem=other_key), "invalid assertion"),
            (assertion(audience="https://evil.example"), "audience is invalid"),
            (assertion(now=time.time() - 600), "expired authorization code"),
            (assertion(username="stranger@example.com"), "user hasn't approved this consumer"),
        ]:
            body = await _token(session, {"grant_type": grant, "assertion": bad})
            assert (body["_status"], body["error_description"]) == (400, why)


async def test_web_server_flow_and_refresh(fake: FakeSalesforce) -> None:
    code = fake.authorize("app-1", USER)
    async with aiohttp.ClientSession(base_url=fake.url) as session:
        first = await _token(
            session,
            {
                "grant_type": "authorization_code",
                "code": code,
                "client_id": "app-1",
                "client_secret": "s3cret",
            },
        )
        assert first["refresh_token"]
        refreshed = await _token(
            session,
            {
                "grant_type": "refresh_token",
                "refresh_token": first["refresh_token"],
                "client_id": "app-1",
                "client_secret": "s3cret",
            },
        )
        assert refreshed["_status"] == 200 and refreshed["access_token"] != first["access_token"]
        wrong = await _token(
            session,
            {"grant_type": "client_credentials", "client_id": "app-1", "client_secret": "x"},
        )
        assert wrong["error"] == "invalid_client"


async def test_expired_session_is_invalid_session_id(
    fake: FakeSalesforce, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{V}/limits") as resp:
        assert resp.status == 200
    fake.advance_time(fake.config.session_seconds + 1)
    async with http.get(f"{V}/limits") as resp:
        assert resp.status == 401
        assert await resp.json() == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]


# -- limits and faults --------------------------------------------------------------------


async def test_daily_allocation_is_a_403(fake: FakeSalesforce, http: aiohttp.ClientSession) -> None:
    fake.used = 999
    async with http.get(f"{V}/limits") as resp:
        assert resp.headers["Sforce-Limit-Info"] == "api-usage=1000/1000"
    async with http.get(f"{V}/limits") as resp:
        assert resp.status == 403
        assert (await resp.json())[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


async def test_concurrency_cap(fake: FakeSalesforce, http: aiohttp.ClientSession) -> None:

    fake.config.concurrent_limit = 2
    fake.config.latency = 0.2

    async def call() -> int:
        async with http.get(f"{V}/limits") as resp:
            return resp.status

    statuses = await asyncio.gather(*(call() for _ in range(4)))
    assert sorted(statuses) == [200, 200, 403, 403]
    assert fake.stats.max_concurrent == 2


async def test_faults(fake: FakeSalesforce, http: aiohttp.ClientSession) -> None:
    fake.inject(status=503)
    async with http.get(f"{V}/limits") as resp:
        assert resp.status == 503
    fake.inject(action="drop_after_commit")
    with pytest.raises(aiohttp.ClientError):
        await _upsert(http, BILL, BILL_ID, [_bill("b1")])
    assert fake.record(BILL, BILL_ID, "b1") is not None
    async with http.get("/_fake/state") as resp:
        state = await resp.json()
    assert state["usage"]["used"] == fake.used and state["records"][BILL][0][BILL_ID] == "b1"


async def test_authorize_redirects_with_a_code_that_gives_a_refresh_token(
    fake: FakeSalesforce,
) -> None:
    async with aiohttp.ClientSession(base_url=fake.url) as session:
        params = {
            "response_type": "code",
            "client_id": "app-1",
            "redirect_uri": "http://127.0.0.1:1/callback",
            "state": "s-1",
            "login_hint": USER,
        }
        async with session.get(
            "/services/oauth2/authorize", params=params, allow_redirects=False
        ) as resp:
            assert resp.status == 302
            location = resp.headers["Location"]
        assert location.startswith("http://127.0.0.1:1/callback?") and "state=s-1" in location
        code = location.split("code=")[1].split("&")[0]
        body = await _token(
            session,
            {
                "grant_type": "authorization_code",
                "code": code,
                "client_id": "app-1",
                "client_secret": "s3cret",
            },
        )
        assert body["_status"] == 200 and body["refresh_token"]
        again = await _token(
            session,
            {
                "grant_type": "authorization_code",
                "code": code,
                "client_id": "app-1",
                "client_secret": "s3cret",
            },
        )
        assert again["error"] == "invalid_grant"  # a code is used once


async def test_control_endpoints_set_faults_usage_and_expire_sessions(
    fake: FakeSalesforce, http: aiohttp.ClientSession
) -> None:
    async with http.post("/_fake/usage", json={"used": 10, "limit": 20}) as resp:
        assert await resp.json() == {"used": 10, "limit": 20}
    async with http.post("/_fake/faults", json={"status": 500, "count": 1}) as resp:
        assert resp.status == 200
    async with http.get(f"{V}/limits") as resp:
        assert resp.status == 500
        assert resp.headers["Sforce-Limit-Info"] == "api-usage=11/20"
    async with http.post("/_fake/expire-sessions") as resp:
        assert (await resp.json())["expired"] >= 1
    async with http.get(f"{V}/limits") as resp:
        assert resp.status == 401
    assert fake.used == 11  # control calls and refused sessions are not counted
