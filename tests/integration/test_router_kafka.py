"""The router on a real broker: envelopes out, live config changes, dead letters, crashes."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import time

import pytest

from shared.contracts import BillStatus, DispatchEnvelope, Trigger, dispatch_id
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from tests.support.builders import account, bill, config, line
from tests.support.kafka import publish, read_topic, values, wait_for
from tests.support.services import running_router, start_service

pytestmark = pytest.mark.kafka


async def _configs(settings: Settings, *cfgs: object) -> None:
    await publish(
        settings.kafka_bootstrap_servers,
        settings.topics.name("integration_configs"),
        [(c.id.encode(), c.to_bytes()) for c in cfgs],
    )  # type: ignore[attr-defined]


async def _bills(settings: Settings, topic_field: str, *bills: object) -> None:
    await publish(
        settings.kafka_bootstrap_servers,
        settings.topics.name(topic_field),
        [(b.id.encode(), b.to_bytes()) for b in bills],
    )  # type: ignore[attr-defined]


async def test_dispatches_of_one_credential_share_a_key(settings: Settings) -> None:
    """Keyed by credential, one credential's work lands on one partition, so one sink
    instance spends its rate limit (shared/sinks/partitioning.py); a configuration without
    a credential keeps its own id as the key."""
    await ensure_topics(settings)
    bs = settings.kafka_bootstrap_servers
    shared_a = config("cfg-a", "STRIPE_TEST", integrationCredentialsId="cred-shared")
    shared_b = config("cfg-b", "STRIPE_TEST", integrationCredentialsId="cred-shared")
    alone = config("cfg-alone", "STRIPE_TEST")
    await _configs(settings, shared_a, shared_b, alone)
    await publish(bs, settings.topics.name("accounts"), [(b"acc-1", account("acc-1").to_bytes())])
    async with running_router(settings):
        await _bills(settings, "bill_generated", bill("bill-1", "acc-1"))
        out = await wait_for(bs, settings.topics.dispatch("stripe"), lambda r: len(r) >= 3)
    keys = {DispatchEnvelope.model_validate_json(r.value).integration_config.id: r.key for r in out}
    assert keys == {
        "cfg-a": b"cred:cred-shared",
        "cfg-b": b"cred:cred-shared",
        "cfg-alone": b"cfg-alone",
    }
    assert len({r.partition for r in out if r.key == b"cred:cred-shared"}) == 1


async def test_bills_become_exact_envelopes_on_the_right_topics(settings: Settings) -> None:
    await ensure_topics(settings)
    bs = settings.kafka_bootstrap_servers
    stripe = config(
        "cfg-stripe",
        "STRIPE_TEST",
        entity={
            "excludedLineItemTypes": ["MINIMUM_SPEND"],
            "sortLineItemsBy": "SUBTOTAL",
            "accountFilter": "customFields.country == US",
        },
    )
    xero = config("cfg-xero", "XERO", restrictedAccountIds=["acc-2"])
    approval = config("cfg-sf", "SALESFORCE", entity={"onlySendBillOnApproval": True})
    await _configs(settings, stripe, xero, approval)
    # acc-1 is in the accounts table only; acc-2's account is embedded in its bill.
    await publish(bs, settings.topics.name("accounts"), [(b"acc-1", account("acc-1").to_bytes())])
    lines = [line("a", "USAGE", "7"), line("b", "MINIMUM_SPEND", "1"), line("c", "USAGE", "3")]
    b1 = bill("bill-1", "acc-1", version=2, lines=lines)
    b2 = bill("bill-2", "acc-2", embed=account("acc-2", customFields={"country": "UK"}))
    async with running_router(settings):
        await _bills(settings, "bill_generated", b1, b2)
        await _bills(
            settings, "bill_approved", b1.model_copy(update={"status": BillStatus.APPROVED})
        )
        stripe_out = await wait_for(bs, settings.topics.dispatch("stripe"), lambda r: len(r) >= 1)
        xero_out = await wait_for(bs, settings.topics.dispatch("xero"), lambda r: len(r) >= 1)
        sf_out = await wait_for(bs, settings.topics.dispatch("salesforce"), lambda r: len(r) >= 1)
        await asyncio.sleep(1.0)  # anything extra would have arrived by now
        stripe_out = await read_topic(bs, settings.topics.dispatch("stripe"))
        xero_out = await read_topic(bs, settings.topics.dispatch("xero"))
        sf_out = await read_topic(bs, settings.topics.dispatch("salesforce"))
    assert len(stripe_out) == 1 and len(xero_out) == 1 and len(sf_out) == 1
    env = DispatchEnvelope.model_validate_json(stripe_out[0].value)
    assert stripe_out[0].key == b"cfg-stripe"
    assert env.bill.id == "bill-1" and env.bill.version == 2
    assert [li.id for li in env.bill.line_items] == ["c", "a"]  # excluded + sorted
    assert env.account.id == "acc-1"
    assert env.trigger is Trigger.GENERATED
    assert env.dispatch_id == dispatch_id("bill-1", 2, "cfg-stripe", 1, Trigger.GENERATED)
    assert env.integration_config == stripe
    xero_env = DispatchEnvelope.model_validate_json(xero_out[0].value)
    assert (xero_env.bill.id, xero_env.trigger) == ("bill-1", Trigger.GENERATED)
    sf_env = DispatchEnvelope.model_validate_json(sf_out[0].value)
    assert (sf_env.bill.id, sf_env.trigger) == ("bill-1", Trigger.APPROVED)
    assert await read_topic(bs, settings.topics.dispatch("paddle")) == []


async def test_disabling_a_configuration_takes_effect_without_restart(settings: Settings) -> None:
    await ensure_topics(settings)
    bs = settings.kafka_bootstrap_servers
    cfg = config("cfg-live", "PADDLE")
    await _configs(settings, cfg)
    topic = settings.topics.dispatch("paddle")
    async with running_router(settings) as router:
        await _bills(settings, "bill_generated", bill("bill-a", embed=account()))
        await wait_for(bs, topic, lambda r: len(r) == 1)
        disabled = cfg.model_copy(update={"enabled": False, "version": 2})
        await _configs(settings, disabled)
        started = time.monotonic()
        while router.routes["cfg-live"].config.enabled:
            assert time.monotonic() - started < 5, "disable not seen within 5 s"
            await asyncio.sleep(0.05)
        await _bills(settings, "bill_generated", bill("bill-b", embed=account()))
        await _bills(settings, "bill_generated", bill("bill-c", embed=account()))
        await asyncio.sleep(1.5)
        assert len(await read_topic(bs, topic)) == 1
        await _configs(settings, disabled.model_copy(update={"enabled": True, "version": 3}))
        await _bills(settings, "bill_generated", bill("bill-d", embed=account()))
        out = await wait_for(bs, topic, lambda r: len(r) == 2)
    assert [DispatchEnvelope.model_validate_json(r.value).bill.id for r in out] == [
        "bill-a",
        "bill-d",
    ]


async def test_malformed_events_are_dead_lettered_and_routing_continues(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    bs = settings.kafka_bootstrap_servers
    await _configs(settings, config("cfg-1", "STRIPE"))
    gen = settings.topics.name("bill_generated")
    garbage = b"\x00\xffnot json at all"
    no_account = bill("bill-orphan", "acc-nowhere")
    async with running_router(settings):
        await publish(
            bs,
            gen,
            [
                (b"k1", garbage),
                (b"k2", b'{"id": "bill-x", "version": "three"}'),
                (b"k3", no_account.to_bytes()),
                (b"k4", bill("bill-good", embed=account()).to_bytes()),
            ],
        )
        letters = values(
            await wait_for(bs, settings.topics.name("dead_letter"), lambda r: len(r) >= 3)
        )
        out = await wait_for(bs, settings.topics.dispatch("stripe"), lambda r: len(r) == 1)
    by_value = {base64.b64decode(dl["originalValueB64"]): dl for dl in letters}
    bad = by_value[garbage]
    assert bad["reason"].startswith("not_json") and bad["sourceTopic"] == gen
    assert isinstance(bad["sourcePartition"], int) and isinstance(bad["sourceOffset"], int)
    assert base64.b64decode(bad["originalKeyB64"]) == b"k1"
    schema = next(dl for v, dl in by_value.items() if v.startswith(b'{"id": "bill-x"'))
    assert schema["reason"].startswith("schema") and "version" in schema["reason"]
    orphan = by_value[no_account.to_bytes()]
    assert orphan["reason"].startswith("unknown_entity") and "acc-nowhere" in orphan["reason"]
    assert json.loads(out[0].value)["bill"]["id"] == "bill-good"


async def test_router_killed_mid_stream_loses_no_bill(settings: Settings) -> None:
    await ensure_topics(settings)
    bs = settings.kafka_bootstrap_servers
    await _configs(settings, config("cfg-a", "STRIPE"), config("cfg-b", "XERO"))
    total = 600
    acc = account()
    bills = [bill(f"bill-{i:04d}", embed=acc) for i in range(total)]
    proc = start_service("services.router", settings)
    try:
        await _bills(settings, "bill_generated", *bills[:300])
        # Kill it while it is working through the stream.
        await wait_for(bs, settings.topics.dispatch("stripe"), lambda r: len(r) >= 50, 60)
        publishing = asyncio.create_task(_bills(settings, "bill_generated", *bills[300:]))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await publishing
        proc = start_service("services.router", settings)
        for family in ("stripe", "xero"):
            out = await wait_for(
                bs,
                settings.topics.dispatch(family),
                lambda r: len({json.loads(x.value)["bill"]["id"] for x in r}) >= total,
                120,
            )
            envelopes = [json.loads(r.value) for r in out]
            assert {e["bill"]["id"] for e in envelopes} == {b.id for b in bills}
            # Duplicates are allowed only as the same dispatch id for the same bill.
            per_bill: dict[str, set[str]] = {}
            for e in envelopes:
                per_bill.setdefault(e["bill"]["id"], set()).add(e["dispatchId"])
            assert all(len(ids) == 1 for ids in per_bill.values())
    finally:
        proc.kill()
        proc.wait(10)
