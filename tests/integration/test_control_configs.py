"""Configurations through the control plane: validation at write time, versions, the single
writer, enable/disable, credentials attached, auth, pagination."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fakes.stripe import FakeStripe
from services.stripe_sink.client import API_BASE_ENV
from shared.contracts import IntegrationConfigAdapter
from shared.settings import Settings
from tests.support.control import Api, api_for, database_backends
from tests.support.kafka import read_topic

pytestmark = pytest.mark.kafka


@pytest.fixture(params=database_backends())
async def api(
    request: pytest.FixtureRequest,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Api]:
    users = tmp_path / "users.yaml"
    users.write_text("- {id: u-ops, email: ops@example.com, name: Ops}\n")
    # Attaching a Stripe credential verifies it against (this local) Stripe.
    stripe = FakeStripe(api_keys=[STRIPE_CRED["apiKey"]])
    monkeypatch.setenv(API_BASE_ENV, await stripe.start())
    try:
        async with api_for(settings, request.param, users_file=users) as client:
            yield client
    finally:
        await stripe.stop()


STRIPE_CRED = {"type": "STRIPE", "id": "cred-stripe", "apiKey": "sk_test_configs_1"}
XERO_CRED = {
    "type": "XERO",
    "id": "cred-xero",
    "clientId": "xero-client",
    "clientSecret": "xero-secret-configs",
}


def stripe_config(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "cfg-stripe",
        "name": "Stripe US",
        "destination": "STRIPE_TEST",
        "integrationCredentialsId": "cred-stripe",
        "disabledNotificationUserIds": ["u-ops", "finance@example.com"],
        "entityConfig": {"accountFilter": "customFields.country == US"},
        "destinationConfig": {"createStripeInvoice": True, "sendDueDate": False},
    }
    body.update(fields)
    return body


async def _creds(api: Api) -> None:
    for body in (STRIPE_CRED, XERO_CRED):
        status, _ = await api.call("POST", "/integrationcredentials", json=body)
        assert status == 201


async def test_create_get_update_delete_round_trip(api: Api, settings: Settings) -> None:
    await _creds(api)
    status, created = await api.call("POST", "/integrationconfigs", json=stripe_config())
    assert status == 201, created
    assert created["version"] == 1 and created["enabled"] is True

    status, got = await api.call("GET", "/integrationconfigs/cfg-stripe", as_="read")
    assert status == 200 and got == created

    update = {**got, "name": "Stripe United States"}
    status, updated = await api.call("PUT", "/integrationconfigs/cfg-stripe", json=update)
    assert status == 200 and updated["version"] == 2 and updated["name"] == "Stripe United States"

    # The same body again changes nothing and keeps the version.
    status, same = await api.call(
        "PUT", "/integrationconfigs/cfg-stripe", json={**update, "version": 2}
    )
    assert status == 200 and same["version"] == 2

    status, stale = await api.call("PUT", "/integrationconfigs/cfg-stripe", json=update)
    assert status == 409 and "version 2" in stale["error"]["message"]
    assert stale["error"]["code"] == "conflict"

    # Generated id when none is given.
    status, generated = await api.call(
        "POST", "/integrationconfigs", json={"destination": "XERO", "name": "Xero"}
    )
    assert status == 201 and generated["id"].startswith("cfg_")

    status, _dup = await api.call("POST", "/integrationconfigs", json=stripe_config())
    assert status == 409

    status, deleted = await api.call("DELETE", "/integrationconfigs/cfg-stripe?version=1")
    assert status == 409
    status, deleted = await api.call("DELETE", "/integrationconfigs/cfg-stripe?version=2")
    assert status == 200 and deleted["id"] == "cfg-stripe"
    status, _ = await api.call("GET", "/integrationconfigs/cfg-stripe")
    assert status == 404

    # The topic holds every version and the tombstone, each a valid configuration.
    records = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.name("integration_configs")
    )
    mine = [r for r in records if r.key == b"cfg-stripe"]
    assert mine[-1].value is None
    versions = [IntegrationConfigAdapter.validate_json(r.value).version for r in mine[:-1]]
    assert versions == [1, 2]


async def test_refusals_say_what_to_fix(api: Api) -> None:
    await _creds(api)
    bad_filter = stripe_config(entityConfig={"accountFilter": "customFields.country = = US"})
    status, body = await api.call("POST", "/integrationconfigs", json=bad_filter)
    assert status == 400 and body["error"]["code"] == "validation_error"
    [detail] = body["error"]["details"]
    assert detail["field"] == "entityConfig.accountFilter"
    assert (detail["position"], detail["line"], detail["column"]) == (23, 1, 24)
    assert detail["expected"] and "==" in detail["message"]

    multi_line = stripe_config(entityConfig={"accountFilter": "a == 1 AND\n(b == 2"})
    status, body = await api.call("POST", "/integrationconfigs", json=multi_line)
    [detail] = body["error"]["details"]
    assert status == 400 and detail["line"] == 2

    status, body = await api.call(
        "POST", "/integrationconfigs", json=stripe_config(integrationCredentialsId="nope")
    )
    assert status == 400
    assert body["error"]["details"] == [
        {
            "field": "integrationCredentialsId",
            "message": "integration credential 'nope' does not exist; create it first",
        }
    ]

    status, body = await api.call(
        "POST", "/integrationconfigs", json=stripe_config(integrationCredentialsId="cred-xero")
    )
    assert status == 400
    assert "is a XERO credential" in body["error"]["details"][0]["message"]
    assert "needs a STRIPE credential" in body["error"]["details"][0]["message"]

    status, body = await api.call(
        "POST",
        "/integrationconfigs",
        json=stripe_config(disabledNotificationUserIds=["u-ops", "nobody"]),
    )
    assert status == 400
    assert body["error"]["details"][0]["field"] == "disabledNotificationUserIds.1"

    # A Paddle setting on a Stripe configuration, a typo and a bad enum: all reported at once.
    wrong = stripe_config(
        destinationConfig={"collectionMode": "manual", "sendDueDte": True},
        entityConfig={"sortLineItemsBy": "PRICE"},
    )
    status, body = await api.call("POST", "/integrationconfigs", json=wrong)
    fields = {d["field"] for d in body["error"]["details"]}
    assert status == 400
    assert {
        "destinationConfig.collectionMode",
        "destinationConfig.sendDueDte",
        "entityConfig.sortLineItemsBy",
    } <= fields
    assert all("input" not in d for d in body["error"]["details"])

    status, body = await api.call(
        "POST", "/integrationconfigs", json={"id": "x", "destination": "QUICKBOOKS"}
    )
    assert status == 400 and body["error"]["details"][0]["field"] == "destination"

    status, body = await api.call(
        "POST", "/integrationconfigs", data=b"{not json", headers={"Content-Type": "text/plain"}
    )
    assert status == 400 and "not valid JSON" in body["error"]["message"]

    status, created = await api.call("POST", "/integrationconfigs", json=stripe_config())
    assert status == 201
    status, body = await api.call(
        "PUT", "/integrationconfigs/cfg-stripe", json={**created, "destination": "XERO"}
    )
    assert status == 400 and body["error"]["details"][0]["field"] == "destination"
    no_version = {k: v for k, v in created.items() if k != "version"}
    status, body = await api.call("PUT", "/integrationconfigs/cfg-stripe", json=no_version)
    assert status == 400 and "current version is 1" in body["error"]["message"]


async def test_authentication_and_read_only_tokens(api: Api) -> None:
    status, body = await api.call("GET", "/integrationconfigs", as_=None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, _ = await api.call(
        "GET", "/integrationconfigs", as_=None, headers={"Authorization": "Bearer wrong"}
    )
    assert status == 401
    status, _ = await api.call("GET", "/integrationconfigs", as_="read")
    assert status == 200
    for method, path in [
        ("POST", "/integrationconfigs"),
        ("PUT", "/integrationconfigs/x"),
        ("DELETE", "/integrationconfigs/x"),
        ("POST", "/integrationconfigs/x/disable"),
        ("POST", "/integrationcredentials"),
        ("POST", "/externalmappings"),
        ("POST", "/integrationevents/x/actioned"),
        ("POST", "/integrationruns/x/resend"),
        ("GET", "/oauth/stripe/start?configId=x"),
    ]:
        status, body = await api.call(method, path, as_="read", json={})
        assert status == 403, (method, path)
        assert body["error"]["code"] == "forbidden"
    for open_path in ("/health", "/metrics", "/openapi.json"):
        async with api.session.get(api.handle.base_url + open_path) as resp:
            assert resp.status == 200, open_path


async def test_list_filters_and_pagination(api: Api) -> None:
    for i in range(7):
        destination = "XERO" if i % 2 else "PADDLE"
        status, _ = await api.call(
            "POST",
            "/integrationconfigs",
            json={"id": f"cfg-{i:02d}", "destination": destination, "enabled": i < 5},
        )
        assert status == 201
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        query = f"?pageSize=3{'&nextToken=' + token if token else ''}"
        status, page = await api.call("GET", "/integrationconfigs" + query, as_="read")
        assert status == 200
        seen += [c["id"] for c in page["data"]]
        pages += 1
        token = page["nextToken"]
        if not token:
            break
    assert seen == [f"cfg-{i:02d}" for i in range(7)] and pages == 3

    status, page = await api.call("GET", "/integrationconfigs?destination=XERO&enabled=true")
    assert [c["id"] for c in page["data"]] == ["cfg-01", "cfg-03"]
    for bad in ("pageSize=0", "pageSize=201", "nextToken=%%%", "enabled=maybe"):
        status, _body = await api.call("GET", f"/integrationconfigs?{bad}")
        assert status == 400, bad


async def test_enable_disable_credential_and_connection(api: Api) -> None:
    await _creds(api)
    body = stripe_config(integrationCredentialsId=None)
    status, _ = await api.call("POST", "/integrationconfigs", json=body)
    assert status == 201
    path = "/integrationconfigs/cfg-stripe"

    status, conn = await api.call("GET", path + "/connection", as_="read")
    assert conn == {
        "status": "NOT_CONNECTED",
        "reason": "no credential is attached",
        "integrationCredentialsId": None,
        "lastVerifiedAt": None,
    }
    status, err = await api.call(
        "POST", path + "/credential", json={"integrationCredentialsId": "cred-xero"}
    )
    assert status == 400 and "needs a STRIPE credential" in err["error"]["message"]
    status, cfg = await api.call(
        "POST", path + "/credential", json={"integrationCredentialsId": "cred-stripe"}
    )
    assert status == 200 and cfg["integrationCredentialsId"] == "cred-stripe"
    assert cfg["version"] == 2
    status, conn = await api.call("GET", path + "/connection")
    assert conn["status"] == "CONNECTED"

    status, cfg = await api.call("POST", path + "/disable", json={"reason": "10 errors"})
    assert status == 200 and cfg["enabled"] is False and cfg["version"] == 3
    status, again = await api.call("POST", path + "/disable", json={"reason": "again"})
    assert status == 200 and again["version"] == 3  # idempotent: no new version

    # Re-applying the file (no `enabled`, no credential) keeps both as they are.
    file_body = stripe_config(name="renamed", version=3)
    del file_body["integrationCredentialsId"]
    status, cfg = await api.call("PUT", path, json=file_body)
    assert status == 200 and cfg["enabled"] is False
    assert cfg["integrationCredentialsId"] == "cred-stripe" and cfg["version"] == 4

    status, cfg = await api.call("POST", path + "/enable")
    assert status == 200 and cfg["enabled"] is True and cfg["version"] == 5

    status, cfg = await api.call("DELETE", path + "/credential")
    assert status == 200 and "integrationCredentialsId" not in cfg and cfg["version"] == 6

    status, changes = await api.call("GET", path + "/changes", as_="read")
    actions = [(c["version"], c["action"], c["reason"]) for c in changes["data"]]
    assert actions[:3] == [
        (6, "detach_credential", None),
        (5, "enable", None),
        (4, "update", None),
    ]
    assert (3, "disable", "10 errors") in actions
    assert all(c["actor"].startswith("admin:") for c in changes["data"])

    # A credential in use cannot be deleted.
    await api.call("POST", path + "/credential", json={"integrationCredentialsId": "cred-stripe"})
    status, body = await api.call("DELETE", "/integrationcredentials/cred-stripe")
    assert status == 409 and "cfg-stripe" in body["error"]["message"]
    status, _ = await api.call("POST", "/integrationconfigs/nope/disable")
    assert status == 404


async def test_single_writer_concurrent_update_and_disable(api: Api, settings: Settings) -> None:
    """An operator's update and the monitor's disable race: both land, nothing is lost."""
    for i in range(5):
        await api.call(
            "POST", "/integrationconfigs", json={"id": f"race-{i}", "destination": "XERO"}
        )

    async def operator(i: int) -> tuple[int, Any]:
        _status, current = await api.call("GET", f"/integrationconfigs/race-{i}")
        return await api.call(
            "PUT", f"/integrationconfigs/race-{i}", json={**current, "name": f"renamed {i}"}
        )

    async def monitor(i: int) -> tuple[int, Any]:
        return await api.call(
            "POST", f"/integrationconfigs/race-{i}/disable", json={"reason": "monitor"}
        )

    results = await asyncio.gather(*(f(i) for i in range(5) for f in (operator, monitor)))
    for i in range(5):
        op_status, _ = results[2 * i]
        if op_status == 409:  # the disable won the race: the operator re-reads and retries
            op_status, _ = await operator(i)
        assert op_status == 200
        assert results[2 * i + 1][0] == 200
        _status, final = await api.call("GET", f"/integrationconfigs/race-{i}")
        assert final["enabled"] is False and final["name"] == f"renamed {i}"
        assert final["version"] == 3

    records = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.name("integration_configs")
    )
    for i in range(5):
        versions = [
            IntegrationConfigAdapter.validate_json(r.value).version
            for r in records
            if r.key == f"race-{i}".encode()
        ]
        assert versions == [1, 2, 3]  # every write is version+1: no two writers collided
