"""Inbound Stripe webhooks on a real broker: verification, de-duplication that survives a
restart, the published status (the invoice map is the sink's to write: only sinks write
it, tests/integration/test_sink_framework_v2.py shows the status reaching it)."""

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


async def seed_invoices(settings: Settings, *invoices: tuple[str, str, str]) -> None:
    """Invoice-map records (configuration, bill, invoice id) as the sink would write them."""
    records = [
        InvoiceMapRecord(
            integration_config_id=config_id,
            bill_id=bill_id,
            bill_version=1,
            state=InvoiceState.DRAFT,
            external_id=invoice_id,
            updated_at=datetime.now(UTC),
        )
        for config_id, bill_id, invoice_id in invoices
    ]
    await publish(
        settings.kafka_bootstrap_servers,
        settings.topics.name("invoice_map"),
        [(r.key.encode(), r.to_bytes()) for r in records],
    )


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
    await seed_invoices(settings, ("cfg-w", "bill-1", "in_1"))
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
    await seed_invoices(settings, ("cfg-w", "bill-1", "in_1"))
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
    await seed_invoices(settings, ("cfg-w", "bill-1", "in_1"))
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


SECRET_A, SECRET_B = "whsec_cfg_a", "whsec_cfg_b"


async def test_a_configuration_cannot_change_another_configurations_invoice(
    settings: Settings,
) -> None:
    """Signed with B's secret on B's path, naming A's bill and A's real invoice: refused.
    C shares B's secret (one Stripe account, one endpoint): B's endpoint may update C's."""
    await ensure_topics(settings)
    bs = settings.kafka_bootstrap_servers
    await seed_invoices(
        settings,
        ("cfg-a", "bill-a", "in_a"),
        ("cfg-b", "bill-b", "in_b"),
        ("cfg-c", "bill-c", "in_c"),
    )
    secrets = {"cfg-a": SECRET_A, "cfg-b": SECRET_B, "cfg-c": SECRET_B}
    async with endpoint(settings, secrets.get) as client:
        attack = stripe_event("evt_attack", bill_id="bill-a", invoice_id="in_a", config_id="cfg-a")
        status, answer = await post(client, attack, sign(SECRET_B, attack), "cfg-b")
        assert (status, answer["status"]) == (200, "not_owned")
        # B's own bill, but A's invoice id: the map says that is not bill-b's invoice.
        swap = stripe_event("evt_swap", bill_id="bill-b", invoice_id="in_a", config_id="cfg-b")
        status, answer = await post(client, swap, sign(SECRET_B, swap), "cfg-b")
        assert (status, answer["status"]) == (200, "not_owned")
        # No billsync metadata at all: not an invoice billsync made.
        bare = json.dumps(
            {"id": "evt_bare", "type": "invoice.paid", "data": {"object": {"id": "in_a"}}}
        )
        status, answer = await post(client, bare.encode(), sign(SECRET_B, bare.encode()), "cfg-b")
        assert (status, answer["status"]) == (200, "not_owned")

        # A bill the map does not know (yet): retried later, nothing published now.
        early = stripe_event(
            "evt_early_b", bill_id="bill-new", invoice_id="in_new", config_id="cfg-b"
        )
        status, answer = await post(client, early, sign(SECRET_B, early), "cfg-b")
        assert (status, answer["status"]) == (503, "retry")

        shared = stripe_event("evt_shared", bill_id="bill-c", invoice_id="in_c", config_id="cfg-c")
        status, answer = await post(client, shared, sign(SECRET_B, shared), "cfg-b")
        assert (status, answer["status"]) == (200, "accepted")
        own = stripe_event("evt_own", bill_id="bill-b", invoice_id="in_b", config_id="cfg-b")
        assert (await post(client, own, sign(SECRET_B, own), "cfg-b"))[1]["status"] == "accepted"
        # The real owner still can (the refused event did not burn its id either).
        status, answer = await post(client, attack, sign(SECRET_A, attack), "cfg-a")
        assert (status, answer["status"]) == (200, "accepted")

    updates = await status_updates(settings)
    assert sorted((u["id"], u["integrationConfigId"]) for u in updates) == [
        ("evt_attack", "cfg-a"),
        ("evt_own", "cfg-b"),
        ("evt_shared", "cfg-c"),
    ]
    records = await read_topic(bs, settings.topics.name("invoice_map"))
    parsed = [InvoiceMapRecord.model_validate_json(r.value or b"") for r in records]
    # Only sinks write the invoice map (they apply the published updates): the refused
    # events above changed nothing, and neither did the accepted ones, here.
    assert [r for r in parsed if r.state is not InvoiceState.DRAFT] == []


async def test_an_invoice_still_being_written_is_retried(settings: Settings) -> None:
    await ensure_topics(settings)
    pending = InvoiceMapRecord(
        integration_config_id="cfg-w",
        bill_id="bill-p",
        bill_version=1,
        state=InvoiceState.PENDING,
        updated_at=datetime.now(UTC),
    )
    await publish(
        settings.kafka_bootstrap_servers,
        settings.topics.name("invoice_map"),
        [(pending.key.encode(), pending.to_bytes())],
    )
    async with endpoint(settings, {"cfg-w": SECRET}.get) as client:
        body = stripe_event("evt_early", "invoice.finalized", bill_id="bill-p", invoice_id="in_p")
        status, answer = await post(client, body, sign(SECRET, body))
        assert (status, answer["status"]) == (503, "retry")
    assert await status_updates(settings) == []


async def test_unknown_configurations_answer_like_a_bad_signature(settings: Settings) -> None:
    await ensure_topics(settings)
    body = stripe_event("evt_probe")
    now = int(time.time())
    headers = [None, "t=abc,v1", f"t={now},v0=00", sign("whsec_guess", body), sign(SECRET, body)]
    async with endpoint(settings, {"cfg-w": SECRET}.get) as client:
        for header in headers[:-1]:
            known = await post(client, body, header, "cfg-w")
            unknown = await post(client, body, header, "cfg-nobody")
            assert known == unknown and known[0] == 400, (header, known, unknown)
        # Even the right secret on an id with no secret: the same answer as a bad signature.
        assert await post(client, body, headers[-1], "cfg-nobody") == await post(
            client, body, headers[-2], "cfg-w"
        )


async def test_hostile_bodies_with_valid_signatures_are_4xx(settings: Settings) -> None:
    await ensure_topics(settings)
    bodies = {
        "5,000-digit number": b'{"id": "e", "type": "invoice.paid", "n": ' + b"1" * 5000 + b"}",
        "nested 100,000 deep": b'{"id": "e", "type": "invoice.paid", "x": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
        "lone surrogate": b'{"id": "e\\ud800", "type": "invoice.paid"}',
        "NaN": b'{"id": "e", "type": "invoice.paid", "n": NaN}',
        "not UTF-8": b'{"id": "\xff", "type": "invoice.paid"}',
    }
    async with endpoint(settings, {"cfg-w": SECRET}.get) as client:
        for name, body in bodies.items():
            status, answer = await post(client, body, sign(SECRET, body))
            assert (status, answer["status"]) == (400, "bad_body"), (name, answer)
        big = b" " * (1024 * 1024 + 1)
        resp = await client.post(
            "/webhooks/stripe/cfg-w", data=big, headers={"Stripe-Signature": sign(SECRET, big)}
        )
        assert resp.status == 413
    assert await status_updates(settings) == []
