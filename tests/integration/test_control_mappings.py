"""External mappings through the control plane: CRUD, filters, look-ups, tombstones."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.contracts import ExternalMapping
from shared.settings import Settings
from tests.support.control import Api, api_for
from tests.support.kafka import read_topic

pytestmark = pytest.mark.kafka


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with api_for(settings) as client:  # mappings live on their topic, not in the store
        yield client


def mapping(m3ter_id: str, external_id: str, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "externalSystem": "Stripe",
        "externalTable": "Customer",
        "externalId": external_id,
        "m3terEntity": "Account",
        "m3terId": m3ter_id,
    }
    body.update(fields)
    return body


async def test_crud_filters_lookups_and_tombstones(api: Api, settings: Settings) -> None:
    await api.call("POST", "/integrationconfigs", json={"id": "cfg-x", "destination": "XERO"})
    status, a = await api.call(
        "POST", "/externalmappings", json=mapping("acc-1", "cus_1", id="m-a")
    )
    assert status == 201 and a["version"] == 1
    status, b = await api.call("POST", "/externalmappings", json=mapping("acc-2", "cus_2"))
    assert status == 201 and b["id"].startswith("map_")
    xero = mapping(
        "acc-1",
        "contact-9",
        externalSystem="Xero",
        externalTable="Contact",
        integrationConfigId="cfg-x",
        id="m-x",
    )
    status, _ = await api.call("POST", "/externalmappings", json=xero)
    assert status == 201

    status, page = await api.call("GET", "/externalmappings?externalSystem=Stripe", as_="read")
    assert {m["id"] for m in page["data"]} == {"m-a", b["id"]}
    status, page = await api.call(
        "GET", "/externalmappings?m3terId=acc-1&integrationConfigId=cfg-x"
    )
    assert [m["id"] for m in page["data"]] == ["m-x"]
    status, page = await api.call("GET", "/externalmappings?pageSize=2")
    assert len(page["data"]) == 2 and page["nextToken"]
    status, rest = await api.call(
        "GET", f"/externalmappings?pageSize=2&nextToken={page['nextToken']}"
    )
    assert len(rest["data"]) == 1 and rest["nextToken"] is None

    status, found = await api.call("GET", "/externalmappings/externalid/Stripe/Customer/cus_1")
    assert status == 200 and [m["id"] for m in found["data"]] == ["m-a"]
    status, found = await api.call("GET", "/externalmappings/entity/Account/acc-1")
    assert {m["id"] for m in found["data"]} == {"m-a", "m-x"}

    # Update with the current version; a stale one is refused.
    status, updated = await api.call(
        "PUT", "/externalmappings/m-a", json=mapping("acc-1", "cus_1b", version=1)
    )
    assert status == 200 and updated["version"] == 2 and updated["externalId"] == "cus_1b"
    status, _ = await api.call(
        "PUT", "/externalmappings/m-a", json=mapping("acc-1", "cus_1c", version=1)
    )
    assert status == 409

    # Two mappings answering the same look-up would make routing ambiguous.
    status, body = await api.call("POST", "/externalmappings", json=mapping("acc-1", "cus_other"))
    assert status == 409 and "m-a" in body["error"]["message"]
    # Another table of the same account is another question (Paddle: Customer, Address
    # and Business of one account).
    status, body = await api.call(
        "POST",
        "/externalmappings",
        json=mapping("acc-1", "add_1", externalSystem="Paddle", externalTable="Address"),
    )
    assert status == 201, body
    status, body = await api.call(
        "POST",
        "/externalmappings",
        json=mapping("acc-1", "biz_1", externalSystem="Paddle", externalTable="Business"),
    )
    assert status == 201, body
    status, body = await api.call(
        "POST",
        "/externalmappings",
        json=mapping("acc-1", "add_2", externalSystem="Paddle", externalTable="address"),
    )
    assert status == 409, body
    status, body = await api.call(
        "POST", "/externalmappings", json=mapping("acc-3", "c", integrationConfigId="nope")
    )
    assert status == 400 and body["error"]["details"][0]["field"] == "integrationConfigId"
    status, body = await api.call("POST", "/externalmappings", json={"externalSystem": "SAP"})
    fields = {d["field"] for d in body["error"]["details"]}
    assert status == 400 and {"externalSystem", "externalId", "m3terId"} <= fields

    status, deleted = await api.call("DELETE", "/externalmappings/m-a")
    assert status == 200 and deleted["id"] == "m-a"
    status, _ = await api.call("GET", "/externalmappings/m-a")
    assert status == 404
    status, _ = await api.call("DELETE", "/externalmappings/m-a")
    assert status == 404

    records = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.name("external_mappings")
    )
    history = [r for r in records if r.key == b"m-a"]
    assert [ExternalMapping.model_validate_json(r.value).version for r in history[:-1]] == [1, 2]
    assert history[-1].value is None  # delete = tombstone
