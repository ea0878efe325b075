"""Run history and events ingested from `integration-results`, and resends published on the
replay topic. Both database backends."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts import (
    ExternalStatusUpdate,
    IntegrationEvent,
    IntegrationRun,
    ReplayRequest,
)
from shared.kafka.client_options import kafka_options
from shared.settings import Settings
from tests.support.builders import bill
from tests.support.control import Api, api_for, database_backends
from tests.support.kafka import publish, values, wait_for

pytestmark = pytest.mark.kafka
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=database_backends())
async def api(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Api]:
    async with api_for(settings, request.param) as client:
        yield client


def run(run_id: str, bill_id: str, config_id: str, status: str, minutes: int, **f: Any) -> bytes:
    record = IntegrationRun(
        id=run_id,
        entity_id=bill_id,
        integration_config_id=config_id,
        destination=f.pop("destination", "STRIPE_TEST"),
        status=status,
        dt_started=T0 + timedelta(minutes=minutes),
        **f,
    )
    return record.to_bytes()


async def results(settings: Settings, *records: tuple[str, bytes]) -> None:
    topic = settings.topics.name("integration_results")
    await publish(settings.kafka_bootstrap_servers, topic, [(k.encode(), v) for k, v in records])


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


async def test_runs_ingested_filtered_newest_first(api: Api, settings: Settings) -> None:
    await results(
        settings,
        ("r1", run("r1", "bill-1", "cfg-a", "STARTED", 0)),
        ("r1", run("r1", "bill-1", "cfg-a", "COMPLETE", 0, external_id="in_1", url="https://x")),
        ("r2", run("r2", "bill-2", "cfg-a", "ERROR", 1, error="card declined")),
        ("r3", run("r3", "bill-1", "cfg-b", "COMPLETE", 2, destination="XERO")),
        ("r1", run("r1", "bill-1", "cfg-a", "STARTED", 0)),  # redelivered: must not regress
        *[(f"p{i}", run(f"p{i}", f"bill-p{i}", "cfg-p", "COMPLETE", 10 + i)) for i in range(5)],
        ("bad", b'{"recordType": "run", "id": "missing-fields"}'),
    )
    status_at = T0 + timedelta(hours=1)
    await results(
        settings,
        (
            "in_1",
            ExternalStatusUpdate(
                id="evt_2",
                external_id="in_1",
                external_status="PAID",
                provider_event_type="invoice.paid",
                dt_received=status_at,
            ).to_bytes(),
        ),
        (
            "in_1",
            ExternalStatusUpdate(  # older, arrives late: must not overwrite PAID
                id="evt_1",
                external_id="in_1",
                external_status="FINALIZED",
                provider_event_type="invoice.finalized",
                dt_received=status_at - timedelta(minutes=5),
            ).to_bytes(),
        ),
    )

    async def all_in() -> bool:
        status, page = await api.call("GET", "/integrationruns?pageSize=200", as_="read")
        return (
            status == 200
            and len(page["data"]) == 8
            and any(r["externalStatus"] for r in page["data"])
        )

    await eventually(all_in)
    status, page = await api.call("GET", "/integrationruns?pageSize=200")
    ids = [r["id"] for r in page["data"]]
    assert ids == ["p4", "p3", "p2", "p1", "p0", "r3", "r2", "r1"]  # newest first
    r1 = page["data"][-1]
    assert r1["status"] == "COMPLETE" and r1["externalId"] == "in_1" and r1["url"] == "https://x"
    assert r1["externalStatus"]["status"] == "PAID"
    assert r1["externalStatus"]["providerEventId"] == "evt_2"

    status, page = await api.call("GET", "/integrationruns?entityId=bill-1")
    assert [r["id"] for r in page["data"]] == ["r3", "r1"]
    status, page = await api.call("GET", "/integrationruns?integrationConfigId=cfg-a&status=ERROR")
    assert [r["id"] for r in page["data"]] == ["r2"]
    status, page = await api.call("GET", "/integrationruns?destination=XERO")
    assert [r["id"] for r in page["data"]] == ["r3"]
    window = "from=2026-03-01T12:01:00Z&to=2026-03-01T12:11:00Z"
    status, page = await api.call("GET", f"/integrationruns?{window}")
    assert [r["id"] for r in page["data"]] == ["p0", "r3", "r2"]

    seen: list[str] = []
    token = ""
    while True:
        status, page = await api.call("GET", f"/integrationruns?pageSize=3{token}")
        seen += [r["id"] for r in page["data"]]
        if not page["nextToken"]:
            break
        token = f"&nextToken={page['nextToken']}"
    assert seen == ids

    status, latest = await api.call("GET", "/integrationruns/latest?entityId=bill-1")
    assert status == 200 and latest["id"] == "r3"
    status, latest = await api.call(
        "GET", "/integrationruns/latest?entityId=bill-1&integrationConfigId=cfg-a"
    )
    assert latest["id"] == "r1"
    status, _ = await api.call("GET", "/integrationruns/latest?entityId=nope")
    assert status == 404
    status, one = await api.call("GET", "/integrationruns/r2")
    assert status == 200 and one["error"] == "card declined"
    status, _ = await api.call("GET", "/integrationruns/nope")
    assert status == 404
    for bad in ("status=DONE", "from=yesterday", "destination=SAP", "nextToken=x"):
        status, _ = await api.call("GET", f"/integrationruns?{bad}")
        assert status == 400, bad

    letters = await wait_for(
        settings.kafka_bootstrap_servers,
        settings.topics.name("dead_letter"),
        lambda rs: any(v["service"] == "control" for v in values(rs)),
    )
    assert any("not a result record" in v["reason"] for v in values(letters))


async def test_events_listed_and_actioned(api: Api, settings: Settings) -> None:
    def event(event_id: str, config_id: str, kind: str, minutes: int) -> tuple[str, bytes]:
        record = IntegrationEvent(
            id=event_id,
            event_type=kind,
            message=f"{kind} on {config_id}",
            integration_config_id=config_id,
            integration_run_id="r-" + event_id,
            entity_id="bill-1",
            dt_created=T0 + timedelta(minutes=minutes),
        )
        return event_id, record.to_bytes()

    await results(
        settings,
        event("e1", "cfg-a", "integration.perform.error", 1),
        event("e2", "cfg-b", "integration.authentication.error", 2),
        event("e3", "cfg-a", "integration.missingaccountmapping.error", 3),
    )

    async def arrived() -> bool:
        _status, page = await api.call("GET", "/integrationevents", as_="read")
        return len(page["data"]) == 3

    await eventually(arrived)
    status, page = await api.call("GET", "/integrationevents?integrationConfigId=cfg-a")
    assert [e["id"] for e in page["data"]] == ["e3", "e1"]
    status, page = await api.call(
        "GET", "/integrationevents?eventType=integration.authentication.error"
    )
    assert [e["id"] for e in page["data"]] == ["e2"]

    status, done = await api.call("POST", "/integrationevents/e1/actioned")
    assert status == 200 and done["actioned"] is True and done["dtActioned"]
    status, again = await api.call("POST", "/integrationevents/e1/actioned")
    assert again["dtActioned"] == done["dtActioned"]  # idempotent
    status, _ = await api.call("POST", "/integrationevents/e1/actioned", as_="read")
    assert status == 403
    status, _ = await api.call("POST", "/integrationevents/nope/actioned")
    assert status == 404

    # A redelivered event keeps its actioned flag.
    await results(settings, event("e1", "cfg-a", "integration.perform.error", 1))
    await results(settings, event("e4", "cfg-a", "integration.perform.error", 4))

    async def e4_arrived() -> bool:
        _status, page = await api.call("GET", "/integrationevents?actioned=false")
        return "e4" in [e["id"] for e in page["data"]]

    await eventually(e4_arrived)
    status, page = await api.call("GET", "/integrationevents?actioned=false")
    assert [e["id"] for e in page["data"]] == ["e4", "e3", "e2"]
    status, page = await api.call("GET", "/integrationevents?actioned=true&pageSize=1")
    assert [e["id"] for e in page["data"]] == ["e1"] and page["nextToken"] is None


async def _bill_at(settings: Settings, bill_id: str) -> str:
    producer = AIOKafkaProducer(**kafka_options(settings.kafka_bootstrap_servers))
    await producer.start()
    try:
        topic = settings.topics.name("bill_generated")
        meta = await producer.send_and_wait(topic, bill(bill_id).to_bytes(), key=bill_id.encode())
        return f"{topic}/{meta.partition}/{meta.offset}"
    finally:
        await producer.stop()


async def test_resend_publishes_replay_requests(api: Api, settings: Settings) -> None:
    status, _ = await api.call(
        "POST", "/integrationconfigs", json={"id": "cfg-r", "destination": "STRIPE_TEST"}
    )
    assert status == 201
    src = {b: await _bill_at(settings, b) for b in ("bill-a", "bill-b", "bill-c")}
    await results(
        settings,
        ("a1", run("a1", "bill-a", "cfg-r", "ERROR", 30, source=src["bill-a"])),
        ("a2", run("a2", "bill-a", "cfg-r", "AUTH_FAILED", 31, source=src["bill-a"])),
        ("b1", run("b1", "bill-b", "cfg-r", "TIMEOUT_LIMIT_EXCEEDED", 32, source=src["bill-b"])),
        ("b2", run("b2", "bill-b", "cfg-r", "COMPLETE", 33, source=src["bill-b"])),
        ("c1", run("c1", "bill-c", "cfg-r", "ERROR", 1, source=src["bill-c"])),  # before since
        ("d1", run("d1", "bill-d", "cfg-r", "ERROR", 34)),  # no recorded source
        ("o1", run("o1", "bill-a", "cfg-other", "ERROR", 35, source=src["bill-a"])),
    )

    async def ingested() -> bool:
        _status, page = await api.call("GET", "/integrationruns?pageSize=200")
        return len(page["data"]) == 7

    await eventually(ingested)
    status, one = await api.call("POST", "/integrationruns/c1/resend")
    assert status == 202, one
    assert one["entityId"] == "bill-c" and one["integrationConfigId"] == "cfg-r"
    status, body = await api.call("POST", "/integrationruns/d1/resend")
    assert status == 409 and "no recorded input offset" in body["error"]["message"]
    status, body = await api.call("POST", "/integrationruns/o1/resend")
    assert status == 404  # its configuration does not exist

    status, failed = await api.call(
        "POST", "/integrationconfigs/cfg-r/resend-failed?since=2026-03-01T12:10:00Z"
    )
    assert status == 202, failed
    assert [(r["runId"], r["entityId"]) for r in failed["resent"]] == [("a2", "bill-a")]
    skipped = {s["runId"]: s["reason"] for s in failed["skipped"]}
    assert set(skipped) == {"b1", "d1"}
    assert "b2" in skipped["b1"] and "no recorded input offset" in skipped["d1"]
    status, body = await api.call("POST", "/integrationconfigs/cfg-r/resend-failed")
    assert status == 400

    replays = await wait_for(
        settings.kafka_bootstrap_servers,
        settings.topics.name("bill_replay"),
        lambda rs: len(rs) >= 2,
    )
    requests = [ReplayRequest.model_validate_json(r.value) for r in replays]
    assert sorted((q.bill.id, tuple(q.config_ids or [])) for q in requests) == [
        ("bill-a", ("cfg-r",)),
        ("bill-c", ("cfg-r",)),
    ]
    by_bill = {q.bill.id: q for q in requests}
    topic, partition, offset = src["bill-a"].rsplit("/", 2)
    assert (by_bill["bill-a"].source_topic, by_bill["bill-a"].source_partition) == (
        topic,
        int(partition),
    )
    assert by_bill["bill-a"].source_offset == int(offset)
    assert by_bill["bill-a"].replay_id == failed["resent"][0]["replayId"]
    assert by_bill["bill-c"].replay_id == one["replayId"]
    assert json.loads(replays[0].value or b"{}")["approvedSource"] is False

    # A disabled configuration would drop the resend: refused with the way out.
    await api.call("POST", "/integrationconfigs/cfg-r/disable")
    status, body = await api.call("POST", "/integrationruns/a2/resend")
    assert status == 409 and "Enable it first" in body["error"]["message"]
