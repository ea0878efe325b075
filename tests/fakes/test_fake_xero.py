"""The local Xero behaves like Xero: the spec's validation, the business rules the spec cannot
express, per-tenant limits with their headers, identity with rotating refresh tokens, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from fakes.xero import API, FakeXero, Organisation
from fakes.xero.wire import dumps, loads

CLIENT, SECRET = "xero-client", "xero-secret"
TENANT = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"
CONTACT = "430fa14a-f945-44d3-9f97-5df5e28441b8"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[FakeXero]:
    fake = FakeXero(clock=clock, clients={CLIENT: SECRET, "custom": "custom-secret"})
    for tenant, name in ((TENANT, "Org A"), (OTHER, "Org B")):
        org = fake.add_organisation(name, tenant)
        org.add_contact("Acme", CONTACT)
        org.add_item("API", "API calls", "200")
        fake.connect(CLIENT, tenant)
    fake.config.custom_connections["custom"] = OTHER
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http(fake: FakeXero) -> AsyncIterator[aiohttp.ClientSession]:
    token = fake.issue_tokens(CLIENT)["access_token"]
    headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": TENANT}
    async with aiohttp.ClientSession(base_url=fake.url, headers=headers) as session:
        yield session


def invoice(number: str | None = "BS-1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Type": "ACCREC",
        "Contact": {"ContactID": CONTACT},
        "Date": "2026-11-01",
        "DueDate": "2026-12-01",
        "LineItems": [
            {
                "Description": "API calls",
                "Quantity": Decimal("1523.5"),
                "UnitAmount": Decimal("0.8"),
                "AccountCode": "200",
            }
        ],
        **fields,
    }
    if number is not None:
        body["InvoiceNumber"] = number
    return body


async def send(
    http: aiohttp.ClientSession,
    method: str,
    invoices: list[dict[str, Any]],
    *,
    summarize: bool = False,
    key: str | None = None,
    path: str = "/Invoices",
    collection: str = "Invoices",
) -> tuple[int, Any, dict[str, str]]:
    params = {"unitdp": "4", **({} if summarize else {"summarizeErrors": "false"})}
    headers = {"Idempotency-Key": key} if key else {}
    async with http.request(
        method,
        API + path,
        params=params,
        data=dumps({collection: invoices}),
        headers={**headers, "Content-Type": "application/json"},
    ) as response:
        return response.status, loads(await response.read()), dict(response.headers)


def org(fake: FakeXero, tenant: str = TENANT) -> Organisation:
    return fake.organisations[tenant]


# ---- spec validation and answer shapes -------------------------------------------------------


async def test_a_valid_invoice_is_created_with_four_decimal_unit_amounts(
    fake: FakeXero, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await send(
        http,
        "PUT",
        [
            invoice(
                LineItems=[
                    {
                        "Description": "x",
                        "Quantity": 3,
                        "UnitAmount": Decimal("0.12345"),
                        "AccountCode": "200",
                    }
                ]
            )
        ],
    )
    assert status == 200
    answer = body["Invoices"][0]
    assert answer["HasErrors"] is False and answer["StatusAttributeString"] == "OK"
    assert answer["Status"] == "DRAFT" and answer["InvoiceNumber"] == "BS-1"
    line = answer["LineItems"][0]
    assert line["UnitAmount"] == Decimal("0.1235") and line["LineAmount"] == Decimal("0.37")
    assert answer["Total"] == Decimal("0.37")
    assert len(fake.documents(TENANT)) == 1


async def test_a_request_the_spec_refuses_gets_xeros_validation_shape_never_a_silent_accept(
    fake: FakeXero, http: aiohttp.ClientSession
) -> None:
    bad = invoice("BS-bad", Status="APPROVED")
    bad["LineItems"][0]["Quantity"] = "1523.5"  # a string: the spec says number
    status, body, _ = await send(http, "PUT", [invoice("BS-ok"), bad])
    assert status == 200
    ok, refused = body["Invoices"]
    assert ok["HasErrors"] is False
    assert refused["HasErrors"] is True and refused["StatusAttributeString"] == "ERROR"
    messages = " | ".join(e["Message"] for e in refused["ValidationErrors"])
    assert "LineItems.0.Quantity" in messages and "'APPROVED' is not one of" in messages
    assert [d["InvoiceNumber"] for d in fake.documents(TENANT)] == ["BS-ok"]
    # summarizeErrors=true (Xero's default): one refused element fails the whole call.
    status, body, _ = await send(http, "PUT", [invoice("BS-2"), bad], summarize=True)
    assert status == 400
    assert body["Type"] == "ValidationException" and body["ErrorNumber"] == 10
    assert body["Elements"][0]["ValidationErrors"]
    assert [d["InvoiceNumber"] for d in fake.documents(TENANT)] == ["BS-ok"]


async def test_a_body_that_is_not_json_or_has_no_list_is_a_400(http: aiohttp.ClientSession) -> None:
    async with http.put(API + "/Invoices", data=b"{nope") as response:
        assert response.status == 400
        assert (await response.json())["Type"] == "ValidationException"
    async with http.put(API + "/Invoices", data=json.dumps({"Invoices": {}})) as response:
        assert response.status == 400


async def test_a_body_over_3_5_mb_is_refused(http: aiohttp.ClientSession) -> None:
    huge = [invoice(f"n{i}", Reference="r" * 100_000) for i in range(36)]
    status, _, _ = await send(http, "PUT", huge)
    assert status == 413


# ---- business rules ---------------------------------------------------------------------------


async def test_invoice_numbers_are_unique_and_put_never_updates(
    fake: FakeXero, http: aiohttp.ClientSession
) -> None:
    await send(http, "PUT", [invoice("BS-1")])
    _, body, _ = await send(http, "PUT", [invoice("BS-1")])
    assert body["Invoices"][0]["ValidationErrors"] == [{"Message": "Invoice # must be unique."}]
    assert len(fake.documents(TENANT)) == 1
    # Another organisation has its own numbers.
    http.headers["xero-tenant-id"] = OTHER
    _, body, _ = await send(http, "PUT", [invoice("BS-1")])
    assert body["Invoices"][0]["HasErrors"] is False


async def test_unknown_contact_item_account_tax_and_currency_are_refused(
    http: aiohttp.ClientSession,
) -> None:
    elements = [
        invoice("a", Contact={"ContactID": "99999999-9999-4999-8999-999999999999"}),
        invoice(
            "b",
            LineItems=[{"Description": "x", "Quantity": 1, "UnitAmount": 1, "ItemCode": "NOPE"}],
        ),
        invoice(
            "c",
            LineItems=[{"Description": "x", "Quantity": 1, "UnitAmount": 1, "AccountCode": "999"}],
        ),
        invoice(
            "d",
            LineItems=[
                {
                    "Description": "x",
                    "Quantity": 1,
                    "UnitAmount": 1,
                    "AccountCode": "200",
                    "TaxType": "BOGUS",
                }
            ],
        ),
        invoice("e", CurrencyCode="JPY"),
    ]
    _, body, _ = await send(http, "PUT", elements)
    messages = [a["ValidationErrors"][0]["Message"] for a in body["Invoices"]]
    assert messages[0] == "The contact could not be found"
    assert messages[1] == "Item code 'NOPE' is not valid"
    assert messages[2] == "Account code '999' is not a valid code for this document."
    assert messages[3].startswith("The TaxType code 'BOGUS' does not exist")
    assert "JPY is not enabled" in messages[4]


async def test_item_fills_account_approval_needs_accounts_due_date_positive_total(
    http: aiohttp.ClientSession,
) -> None:
    item_line = {"Description": "x", "Quantity": 1, "UnitAmount": 5, "ItemCode": "API"}
    no_account = {"Description": "x", "Quantity": 1, "UnitAmount": 5}
    negative = {"Description": "credit", "Quantity": 1, "UnitAmount": -9, "AccountCode": "200"}
    elements = [
        invoice("a", Status="AUTHORISED", LineItems=[item_line]),
        invoice("b", Status="AUTHORISED", LineItems=[no_account]),
        invoice("c", Status="DRAFT", LineItems=[no_account]),
        invoice("d", Status="AUTHORISED", DueDate=None),
        invoice("e", Status="AUTHORISED", LineItems=[item_line, negative]),
        invoice("f", Status="DRAFT", LineItems=[item_line, negative]),
    ]
    del elements[3]["DueDate"]
    _, body, _ = await send(http, "PUT", elements)
    a, b, c, d, e, f = body["Invoices"]
    assert a["HasErrors"] is False and a["LineItems"][0]["AccountCode"] == "200"
    assert b["ValidationErrors"] == [{"Message": "Account code must be specified"}]
    assert c["HasErrors"] is False  # a draft may wait for its account code
    assert d["ValidationErrors"] == [{"Message": "Due Date must be specified"}]
    assert e["ValidationErrors"] == [{"Message": "Invoice total must be zero or positive"}]
    assert f["HasErrors"] is False and f["Total"] == Decimal("-4.00")


async def test_edits_only_on_draft_or_submitted(
    fake: FakeXero, http: aiohttp.ClientSession
) -> None:
    _, body, _ = await send(http, "PUT", [invoice("BS-1")])
    ident = body["Invoices"][0]["InvoiceID"]
    changed = invoice(None, InvoiceID=ident, Reference="v2")
    _, body, _ = await send(http, "POST", [changed])
    assert body["Invoices"][0]["Reference"] == "v2"
    # POST by number updates too.
    _, body, _ = await send(http, "POST", [invoice("BS-1", Reference="v3", Status="AUTHORISED")])
    assert (
        body["Invoices"][0]["InvoiceID"] == ident and body["Invoices"][0]["Status"] == "AUTHORISED"
    )
    _, body, _ = await send(http, "POST", [invoice("BS-1", Reference="v4")])
    assert body["Invoices"][0]["ValidationErrors"] == [
        {"Message": "This document cannot be edited as it has a status of AUTHORISED."}
    ]
    fake.set_status(TENANT, ident, "PAID")
    _, body, _ = await send(http, "POST", [invoice("BS-1", Reference="v5")])
    assert (
        "payment or credit note allocated" in body["Invoices"][0]["ValidationErrors"][0]["Message"]
    )
    assert org(fake).documents["Invoices"][ident]["Reference"] == "v3"


async def test_a_status_never_goes_back_and_an_authorised_invoice_can_be_voided(
    http: aiohttp.ClientSession,
) -> None:
    _, body, _ = await send(http, "PUT", [invoice("BS-1", Status="AUTHORISED")])
    ident = body["Invoices"][0]["InvoiceID"]
    _, body, _ = await send(http, "POST", [{"InvoiceID": ident, "Status": "DRAFT"}])
    assert body["Invoices"][0]["HasErrors"] is True
    _, body, _ = await send(http, "POST", [{"InvoiceID": ident, "Status": "VOIDED"}])
    assert body["Invoices"][0]["Status"] == "VOIDED"


async def test_credit_notes(fake: FakeXero, http: aiohttp.ClientSession) -> None:
    note = invoice(None, Type="ACCRECCREDIT", CreditNoteNumber="BS-9", Status="AUTHORISED")
    del note["DueDate"]
    status, body, _ = await send(http, "PUT", [note], path="/CreditNotes", collection="CreditNotes")
    assert status == 200 and body["CreditNotes"][0]["HasErrors"] is False
    _, body, _ = await send(
        http, "PUT", [invoice(None, Type="ACCREC")], path="/CreditNotes", collection="CreditNotes"
    )
    assert (
        "Type: 'ACCREC' is not one of ['ACCPAYCREDIT', 'ACCRECCREDIT']"
        in body["CreditNotes"][0]["ValidationErrors"][0]["Message"]
    )
    assert len(fake.documents(TENANT, "CreditNotes")) == 1


async def test_look_ups_by_numbers_ids_and_reference(http: aiohttp.ClientSession) -> None:
    _, body, _ = await send(
        http, "PUT", [invoice(f"BS-{i}", Reference=f"PO-{i}") for i in range(3)]
    )
    first = body["Invoices"][0]["InvoiceID"]
    async with http.get(API + "/Invoices", params={"InvoiceNumbers": "BS-1,BS-2"}) as response:
        assert [i["InvoiceNumber"] for i in (await response.json())["Invoices"]] == ["BS-1", "BS-2"]
    async with http.get(API + "/Invoices", params={"IDs": first}) as response:
        assert [i["InvoiceNumber"] for i in (await response.json())["Invoices"]] == ["BS-0"]
    where = 'Reference=="PO-2" OR Reference=="PO-0"'
    async with http.get(API + "/Invoices", params={"where": where}) as response:
        assert {i["InvoiceNumber"] for i in (await response.json())["Invoices"]} == {"BS-0", "BS-2"}
    async with http.get(API + f"/Invoices/{first}") as response:
        assert (await response.json())["Invoices"][0]["InvoiceNumber"] == "BS-0"


# ---- idempotency ------------------------------------------------------------------------------


async def test_idempotency_key_replays_the_first_answer(
    fake: FakeXero, http: aiohttp.ClientSession
) -> None:
    first = await send(http, "PUT", [invoice("BS-1")], key="k1")
    again = await send(http, "PUT", [invoice("BS-1")], key="k1")
    assert again[1] == first[1] and again[1]["Invoices"][0]["HasErrors"] is False
    assert len(fake.documents(TENANT)) == 1 and fake.stats["idempotent_replays"] == 1
    status, body, _ = await send(http, "PUT", [invoice("BS-2")], key="k1")
    assert status == 400 and "different request" in body["Message"]
    status, body, _ = await send(http, "PUT", [invoice("BS-3")], key="k" * 129)
    assert status == 400 and "128" in body["Message"]


# ---- limits -----------------------------------------------------------------------------------


async def test_minute_limit_headers_and_429(
    fake: FakeXero, http: aiohttp.ClientSession, clock: Clock
) -> None:
    fake.config.minute_limit = 3
    remaining = []
    for _ in range(3):
        async with http.get(API + "/Invoices") as response:
            assert response.status == 200
            remaining.append(response.headers["X-MinLimit-Remaining"])
            assert response.headers["X-DayLimit-Remaining"]
            assert response.headers["X-AppMinLimit-Remaining"]
    assert remaining == ["2", "1", "0"]
    clock.now += 20
    async with http.get(API + "/Invoices") as response:
        assert response.status == 429
        assert response.headers["X-Rate-Limit-Problem"] == "minute"
        assert response.headers["Retry-After"] == "40"
    # Another tenant has its own minute.
    http.headers["xero-tenant-id"] = OTHER
    async with http.get(API + "/Invoices") as response:
        assert response.status == 200
    clock.now += 40
    http.headers["xero-tenant-id"] = TENANT
    async with http.get(API + "/Invoices") as response:
        assert response.status == 200


async def test_a_spent_day_blocks_only_its_tenant(
    fake: FakeXero, http: aiohttp.ClientSession, clock: Clock
) -> None:
    fake.config.daily = 2
    fake.config.access_ttl = 10 * 86400
    http.headers["Authorization"] = "Bearer " + fake.issue_tokens(CLIENT)["access_token"]
    for _ in range(2):
        async with http.get(API + "/Invoices") as response:
            assert response.status == 200
    async with http.get(API + "/Invoices") as response:
        assert response.status == 429
        assert response.headers["X-Rate-Limit-Problem"] == "day"
        assert response.headers["X-DayLimit-Remaining"] == "0"
        assert float(response.headers["Retry-After"]) == pytest.approx(86400, abs=1)
    http.headers["xero-tenant-id"] = OTHER
    async with http.get(API + "/Invoices") as response:
        assert response.status == 200
    clock.now += 86400
    http.headers["xero-tenant-id"] = TENANT
    async with http.get(API + "/Invoices") as response:
        assert response.status == 200 and response.headers["X-DayLimit-Remaining"] == "1"


async def test_at_most_five_calls_at_once_per_tenant(
    fake: FakeXero, http: aiohttp.ClientSession
) -> None:
    fake.inject(latency=0.3, count=5)

    async def one() -> tuple[int, str | None]:
        async with http.get(API + "/Invoices") as response:
            return response.status, response.headers.get("X-Rate-Limit-Problem")

    slow = [asyncio.create_task(one()) for _ in range(5)]
    await fake.wait_active(TENANT, 5)  # the five are inside
    assert await one() == (429, "concurrent")
    assert sorted(await asyncio.gather(*slow)) == [(200, None)] * 5


# ---- identity ---------------------------------------------------------------------------------


async def token(
    fake: FakeXero, form: dict[str, str], auth: tuple[str, str] = (CLIENT, SECRET)
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{fake.url}/connect/token", data=form, auth=aiohttp.BasicAuth(*auth)
        ) as r:
            return r.status, await r.json()


async def test_code_flow_connections_and_rotating_refresh_tokens(
    fake: FakeXero, clock: Clock
) -> None:
    async with aiohttp.ClientSession() as session:
        params = {
            "client_id": CLIENT,
            "redirect_uri": "http://cb/x",
            "response_type": "code",
            "state": "s1",
            "scope": "accounting.transactions offline_access",
        }
        async with session.get(
            f"{fake.url}/identity/connect/authorize", params=params, allow_redirects=False
        ) as r:
            assert r.status == 302
            location = r.headers["Location"]
    assert location.startswith("http://cb/x?code=") and "state=s1" in location
    code = location.split("code=")[1].split("&")[0]
    status, pair = await token(
        fake, {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://cb/x"}
    )
    assert status == 200 and pair["expires_in"] == 1800
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {pair['access_token']}"}
    ) as session:
        async with session.get(f"{fake.url}/connections") as r:
            tenants = {c["tenantId"] for c in await r.json()}
    assert tenants == {TENANT, OTHER}
    # The code is used up.
    assert (
        await token(
            fake, {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://cb/x"}
        )
    )[0] == 400
    # Rotation: a new refresh token each time; the used one answers the same successor
    # during the grace period (a client that lost the answer still gets in), then dies.
    first = pair["refresh_token"]
    status, second = await token(fake, {"grant_type": "refresh_token", "refresh_token": first})
    assert status == 200 and second["refresh_token"] != first
    clock.now += 1700
    status, again = await token(fake, {"grant_type": "refresh_token", "refresh_token": first})
    assert status == 200 and again["refresh_token"] == second["refresh_token"]
    assert again["access_token"] != second["access_token"]
    clock.now += 200
    assert (await token(fake, {"grant_type": "refresh_token", "refresh_token": first}))[1] == {
        "error": "invalid_grant"
    }
    # The access token of 1,900 s ago has expired (30 minutes).
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {pair['access_token']}", "xero-tenant-id": TENANT}
    ) as session:
        async with session.get(f"{fake.url}{API}/Invoices") as r:
            assert r.status == 401 and (await r.json())["Detail"] == "TokenExpired"
    status, third = await token(
        fake, {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}
    )
    assert status == 200
    # A wrong client secret is refused.
    assert (
        await token(
            fake,
            {"grant_type": "refresh_token", "refresh_token": third["refresh_token"]},
            (CLIENT, "x"),
        )
    )[1] == {"error": "invalid_client"}


async def test_custom_connection_reaches_exactly_its_tenant(fake: FakeXero) -> None:
    status, pair = await token(
        fake, {"grant_type": "client_credentials"}, ("custom", "custom-secret")
    )
    assert status == 200 and "refresh_token" not in pair
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    async with aiohttp.ClientSession(base_url=fake.url, headers=headers) as session:
        async with session.get("/connections") as r:
            assert [c["tenantId"] for c in await r.json()] == [OTHER]
        async with session.get(API + "/Invoices", headers={"xero-tenant-id": OTHER}) as r:
            assert r.status == 200
        async with session.get(API + "/Invoices", headers={"xero-tenant-id": TENANT}) as r:
            assert r.status == 403 and (await r.json())["Detail"] == "AuthorizationUnsuccessful"
        async with session.get(API + "/Invoices") as r:
            assert r.status == 403
    assert (await token(fake, {"grant_type": "client_credentials"}))[1] == {
        "error": "unauthorized_client"
    }


async def test_an_unknown_token_is_a_401(fake: FakeXero) -> None:
    async with aiohttp.ClientSession(
        headers={"Authorization": "Bearer nope", "xero-tenant-id": TENANT}
    ) as session:
        async with session.get(f"{fake.url}{API}/Invoices") as r:
            assert r.status == 401 and (await r.json())["Detail"] == "AuthenticationUnsuccessful"


# ---- faults and inspection --------------------------------------------------------------------


async def test_injected_5xx_and_drops(fake: FakeXero, http: aiohttp.ClientSession) -> None:
    fake.inject(status=503, method="PUT", path="/Invoices")
    status, _, _ = await send(http, "PUT", [invoice("BS-1")])
    assert status == 503 and fake.documents(TENANT) == []
    # POST: aiohttp retries an idempotent method (PUT) on a dropped connection by itself.
    fake.inject(action="drop_after_commit", method="POST")
    with pytest.raises(aiohttp.ClientError):
        await send(http, "POST", [invoice("BS-1")])
    assert [d["InvoiceNumber"] for d in fake.documents(TENANT)] == ["BS-1"]  # committed
    assert fake.stats["dropped_after_commit"] == 1
    fake.inject(action="drop_before_commit", method="POST")
    with pytest.raises(aiohttp.ClientError):
        await send(http, "POST", [invoice("BS-2")])
    assert len(fake.documents(TENANT)) == 1


async def test_inspect_and_control_over_http(fake: FakeXero, http: aiohttp.ClientSession) -> None:
    _, body, _ = await send(http, "PUT", [invoice("BS-1", Status="AUTHORISED")])
    ident = body["Invoices"][0]["InvoiceID"]
    async with aiohttp.ClientSession(base_url=fake.url) as control:
        async with control.post(
            f"/_fake/documents/{ident}/status", json={"tenantId": TENANT, "status": "PAID"}
        ) as r:
            assert (await r.json())["Status"] == "PAID"
        async with control.get("/_fake/state") as r:
            state = await r.json()
        assert state["organisations"][0]["invoices"][0]["Status"] == "PAID"
        async with control.post(
            "/_fake/seed",
            json={
                "tenantId": TENANT,
                "contacts": [{"Name": "Zed"}],
                "items": [{"Code": "Z", "AccountCode": "200"}],
            },
        ) as r:
            assert r.status == 200
        assert "Z" in org(fake).items
        async with control.post("/_fake/faults", json={"status": 500, "count": 1}) as r:
            assert r.status == 200
        async with control.get("/_fake/stats") as r:
            assert (await r.json())["batch_sizes"] == [1]
    status, _, _ = await send(http, "PUT", [invoice("BS-2")])
    assert status == 500
    async with aiohttp.ClientSession(base_url=fake.url) as control:
        async with control.post("/_fake/reset") as r:
            assert r.status == 200
    assert fake.documents(TENANT) == []
