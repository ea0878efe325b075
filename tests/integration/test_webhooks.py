"""Inbound Stripe webhooks on a real broker: verification, de-duplication that survives a
restart, the published status (the invoice map is the sink's to write: only sinks write
it, tests/integration/test_sink_framework_kafka.py shows the status reaching it)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer

from services.webhooks.routes import stripe_webhook_routes
from services.webhooks.service import WebhookService
from services.webhooks.settings import WebhookSettings
from services.webhooks.signature import compute, sign
from services.webhooks.state import WebhookState
from shared.credentials import CredentialCipher, StripeCredential, generate_key
from shared.credentials.store import publish_credential, seal
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from shared.sinks.invoice_map import InvoiceMapRecord, InvoiceState
from tests.support.builders import config
from tests.support.kafka import publish, read_topic, values

pytestmark = pytest.mark.kafka

SECRET = "whsec_cfg_w"


def stripe_event(
    event_id: str,
    kind: str = "invoice.paid",
    bill_id: str = "bill-1",
    invoice_id: str = "in_1",
    config_id: str = "cfg-w",
) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "livemode": False,
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": invoice_id,
                    "object": "invoice",
                    "status": "paid",
                    "metadata": {"billsync_bill_id": bill_id, "billsync_config_id": config_id},
                }
            },
        }
    ).encode()


@contextlib.asynccontextmanager
async def endpoint(
    settings: Settings, secrets: Callable[[str], str | None]
) -> AsyncIterator[TestClient[Any, Any]]:
    """The routes mounted in an app, their state started and stopped with it."""
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    state = WebhookState(settings, producer)
    await state.start()
    app = web.Application()
    app.add_routes(stripe_webhook_routes(settings, secrets, producer, state))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await state.stop()
        await producer.stop()


async def post(
    client: TestClient[Any, Any], body: bytes, header: str | None, config_id: str = "cfg-w"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    resp = await client.post(f"/webhooks/stripe/{config_id}", data=body, headers=headers)
    return resp.status, await resp.json()


async def status_updates(settings: Settings) -> list[dict[str, Any]]:
    records = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.name("integration_results")
    )
    return [v for v in values(records) if v.get("recordType") == "externalStatus"]


async def test_verified_events_publish_status_and_leave_the_map_to_sinks(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    bs = settings.kafka_bootstrap_servers
    draft = InvoiceMapRecord(
        integration_config_id="cfg-w",
        bill_id="bill-1",
        bill_version=3,
        state=InvoiceState.DRAFT,
        external_id="in_1",
        updated_at=datetime.now(UTC),
    )
    await publish(bs, settings.topics.name("invoice_map"), [(draft.key.encode(), draft.to_bytes())])
    async with endpoint(settings, {"cfg-w": SECRET}.get) as client:
        body = stripe_event("evt_paid_1")
        status, answer = await post(client, body, sign(SECRET, body))
        assert (status, answer["status"], answer["externalStatus"]) == (200, "accepted", "PAID")
        updates = await status_updates(settings)
        assert len(updates) == 1
        assert updates[0] | {"dtReceived": None} == {
            "recordType": "externalStatus",
            "id": "evt_paid_1",
            "destination": "STRIPE_TEST",
            "externalId": "in_1",
            "externalStatus": "PAID",
            "providerEventType": "invoice.paid",
            "entityId": "bill-1",
            "integrationConfigId": "cfg-w",
            "dtReceived": None,
        }
        # The answer came after everything durable was written: the map is untouched.
        assert len(await read_topic(bs, settings.topics.name("invoice_map"))) == 1

        body = stripe_event("evt_fin_1", "invoice.finalized")
        assert (await post(client, body, sign(SECRET, body)))[0] == 200

        # Untracked types: 200, nothing published.
        body = stripe_event("evt_created_1", "invoice.created")
        status, answer = await post(client, body, sign(SECRET, body))
        assert (status, answer["status"]) == (200, "ignored")
        assert len(await status_updates(settings)) == 2
        assert len(await read_topic(bs, settings.topics.name("invoice_map"))) == 1


async def test_refusals_publish_nothing(settings: Settings) -> None:
    await ensure_topics(settings)
    body = stripe_event("evt_r")
    now = int(time.time())
    cases = {
        "missing header": (body, None, "cfg-w"),
        "malformed": (body, "t=abc,v1", "cfg-w"),
        "no v1": (body, f"t={now},v0={compute(SECRET, now, body)}", "cfg-w"),
        "wrong secret": (body, sign("whsec_other", body), "cfg-w"),
        "stale": (body, sign(SECRET, body, now - 310), "cfg-w"),
        "future": (body, sign(SECRET, body, now + 310), "cfg-w"),
        "tampered": (body.replace(b"paid", b"void"), sign(SECRET, body), "cfg-w"),
        "no secret for config": (body, sign(SECRET, body), "cfg-unknown"),
        "unparseable body": (b"{not json", sign(SECRET, b"{not json"), "cfg-w"),
    }
    async with endpoint(settings, {"cfg-w": SECRET}.get) as client:
        for name, (payload, header, config_id) in cases.items():
            status, answer = await post(client, payload, header, config_id)
            assert status == 400, name
            assert answer["message"], name
        ok_body = stripe_event("evt_ok")
        assert (
            await post(client, ok_body, f"t={now},v1={'0' * 64},v1={compute(SECRET, now, ok_body)}")
        )[0] == 200  # one v1 matches
    updates = await status_updates(settings)
    assert [u["id"] for u in updates] == ["evt_ok"]


async def test_duplicate_event_ids_are_ignored_across_a_restart(settings: Settings) -> None:
    await ensure_topics(settings)
    body = stripe_event("evt_dup", "invoice.voided")
    async with endpoint(settings, {"cfg-w": SECRET}.get) as client:
        assert (await post(client, body, sign(SECRET, body)))[1]["status"] == "accepted"
        assert (await post(client, body, sign(SECRET, body)))[1]["status"] == "duplicate"
    async with endpoint(settings, {"cfg-w": SECRET}.get) as client:  # a fresh process
        status, answer = await post(client, body, sign(SECRET, body))
        assert (status, answer["status"]) == (200, "duplicate")
        other = stripe_event("evt_new", "invoice.payment_failed")
        assert (await post(client, other, sign(SECRET, other)))[1]["status"] == "accepted"
    updates = await status_updates(settings)
    assert [(u["id"], u["externalStatus"]) for u in updates] == [
        ("evt_dup", "VOID"),
        ("evt_new", "PAYMENT_FAILED"),
    ]


async def test_standalone_service_uses_the_credential_webhook_secret(settings: Settings) -> None:
    key = generate_key()
    settings = settings.model_copy(update={"credentials_key": key})
    await ensure_topics(settings)
    bs = settings.kafka_bootstrap_servers
    credential = StripeCredential(id="cred-s", api_key="sk_test_x", webhook_secret=SECRET)
    producer = make_producer(bs)
    await producer.start()
    try:
        await publish_credential(
            producer, settings.topics.name("credentials"), seal(credential, CredentialCipher(key))
        )
    finally:
        await producer.stop()
    cfg = config("cfg-w", integrationCredentialsId="cred-s")
    await publish(bs, settings.topics.name("integration_configs"), [(b"cfg-w", cfg.to_bytes())])
    service = WebhookService(settings, WebhookSettings(host="127.0.0.1", port=0))
    await service.start()
    try:
        body = stripe_event("evt_svc", "invoice.finalized")
        url = f"http://127.0.0.1:{service.port}"
        async with ClientSession() as session:
            async with session.post(
                f"{url}/webhooks/stripe/cfg-w",
                data=body,
                headers={"Stripe-Signature": sign(SECRET, body)},
            ) as resp:
                assert resp.status == 200, await resp.text()
            async with session.post(
                f"{url}/webhooks/stripe/cfg-w",
                data=body,
                headers={"Stripe-Signature": sign("whsec_x", body)},
            ) as resp:
                assert resp.status == 400
            async with session.get(f"{url}/health") as resp:
                assert resp.status == 200
            async with session.get(f"{url}/metrics") as resp:
                assert "billsync_webhooks_received_total" in await resp.text()
    finally:
        await service.stop()
    assert [u["externalStatus"] for u in await status_updates(settings)] == ["FINALIZED"]
