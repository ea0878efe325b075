"""No single record stops the router, and a rebalance neither crashes it nor strands a
commit (issue 7, items 2, 8 and 9), on the real broker."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import string
import time

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.router.service import RouterService
from shared.contracts import DispatchEnvelope, LineItem
from shared.kafka.client_options import kafka_options
from shared.kafka.deadletter import ORIGINAL_PREFIX_BYTES
from shared.kafka.groups import committed_offsets
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from tests.support.builders import account, bill, config, line
from tests.support.kafka import publish, read_topic, values, wait_for
from tests.support.services import running_router

pytestmark = pytest.mark.kafka


async def _committed(settings: Settings, topic: str) -> dict[int, int]:
    offsets = await committed_offsets(
        settings.kafka_bootstrap_servers, f"{settings.consumer_group_prefix}-router"
    )
    return {tp.partition: offset for tp, offset in offsets.items() if tp.topic == topic}


async def _wait_committed_past(
    settings: Settings, topic: str, partition: int, offset: int, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while (await _committed(settings, topic)).get(partition, -1) <= offset:
        assert time.monotonic() < deadline, f"{topic}/{partition} not committed past {offset}"
        await asyncio.sleep(0.2)


async def _topics_and_one_config(settings: Settings) -> None:
    """The topics, and configuration cfg-1 (Stripe) for the router to route to."""
    await ensure_topics(settings)
    await publish(
        settings.kafka_bootstrap_servers,
        settings.topics.name("integration_configs"),
        [(b"cfg-1", config("cfg-1").to_bytes())],
    )


async def test_a_900_kb_record_is_dead_lettered_with_a_prefix_and_routing_goes_on(
    settings: Settings,
) -> None:
    bs = settings.kafka_bootstrap_servers
    gen = settings.topics.name("bill_generated")
    await _topics_and_one_config(settings)
    huge = b"{" + b"x" * (900 * 1024)  # not JSON, and its base64 is over 1 MB
    good = bill("bill-after", embed=account()).to_bytes()
    async with running_router(settings):
        await publish(bs, gen, [(b"same-key", huge), (b"same-key", good)])
        [letter] = values(
            await wait_for(bs, settings.topics.name("dead_letter"), lambda r: len(r) >= 1)
        )
        out = await wait_for(bs, settings.topics.dispatch("stripe"), lambda r: len(r) == 1)
        partition, offset = letter["sourcePartition"], letter["sourceOffset"]
        await _wait_committed_past(settings, gen, partition, offset + 1)
    assert letter["reason"].startswith("not_json")
    assert letter["sourceTopic"] == gen
    assert letter["originalTruncated"] is True
    assert letter["originalValueBytes"] == len(huge)
    assert base64.b64decode(letter["originalValueB64"]) == huge[:ORIGINAL_PREFIX_BYTES]
    assert json.loads(out[0].value)["bill"]["id"] == "bill-after"


def _bill_of_size(bill_id: str, target: int, text: str) -> bytes:
    """A schema-valid bill of about `target` bytes with an embedded account carrying
    `text` (so the envelope, which repeats the account, is larger than the bill)."""
    acc = account(customFields={"notes": text})

    def lines(count: int) -> list[LineItem]:
        return [
            line(f"li-{i:05d}", description=f"usage {i:05d} " + "d" * 400) for i in range(count)
        ]

    one = len(lines(1)[0].to_bytes()) + 1
    base = len(bill(bill_id, lines=lines(1), embed=acc).to_bytes()) - one
    return bill(bill_id, lines=lines(max(1, (target - base) // one)), embed=acc).to_bytes()


async def test_a_bill_whose_envelope_exceeds_the_broker_limit_goes_compressed(
    settings: Settings,
) -> None:
    bs = settings.kafka_bootstrap_servers
    await _topics_and_one_config(settings)
    # 1,040,000 bytes: the broker takes it on bill-generated (limit 1,048,588 per batch);
    # its envelope repeats the 10 KB account and is over the limit uncompressed.
    raw = _bill_of_size("bill-big", 1_040_000, "n" * 10_000)
    assert 1_030_000 < len(raw) < 1_046_000
    producer = AIOKafkaProducer(**kafka_options(bs), acks="all", max_request_size=2**21)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.name("bill_generated"), raw, key=b"big")
    finally:
        await producer.stop()
    async with running_router(settings):
        out = await wait_for(bs, settings.topics.dispatch("stripe"), lambda r: len(r) == 1, 60)
    assert len(out[0].value) > 1_048_588
    envelope = DispatchEnvelope.model_validate_json(out[0].value)
    assert envelope.bill.id == "bill-big"
    assert len(envelope.bill.line_items) == len(json.loads(raw)["lineItems"])


async def test_an_envelope_too_large_even_compressed_is_dead_lettered(
    settings: Settings,
) -> None:
    bs = settings.kafka_bootstrap_servers
    # A dispatch topic that takes only 100 kB per batch, so a small incompressible bill
    # stands in for a huge one.
    admin = AIOKafkaAdminClient(**kafka_options(bs))
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    settings.topics.dispatch("stripe"),
                    3,
                    1,
                    topic_configs={"max.message.bytes": "100000"},
                )
            ]
        )
    finally:
        await admin.close()
    await _topics_and_one_config(settings)
    rng = random.Random(3)
    noise = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(200_000))
    incompressible = bill("bill-noise", embed=account(customFields={"notes": noise}))
    compressible = _bill_of_size("bill-text", 200_000, "n")
    service = RouterService(settings)
    service.dispatch_max_bytes = 90_000
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        await publish(
            bs,
            settings.topics.name("bill_generated"),
            [(b"k", incompressible.to_bytes()), (b"k", compressible)],
        )
        [letter] = values(
            await wait_for(bs, settings.topics.name("dead_letter"), lambda r: len(r) >= 1)
        )
        out = await wait_for(bs, settings.topics.dispatch("stripe"), lambda r: len(r) == 1)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await service.stop()
    assert letter["reason"].startswith("too_large") and "cfg-1" in letter["reason"]
    assert json.loads(out[0].value)["bill"]["id"] == "bill-text"


async def test_unbounded_amounts_and_a_foreign_account_are_dead_lettered_naming_the_field(
    settings: Settings,
) -> None:
    bs = settings.kafka_bootstrap_servers
    await _topics_and_one_config(settings)
    ok = json.loads(bill("bill-ok", embed=account()).to_bytes())
    huge_amount = json.loads(bill("bill-amount", embed=account()).to_bytes())
    huge_amount["lineItems"][0]["subtotal"] = "1e400"
    huge_quantity = json.loads(bill("bill-quantity", embed=account()).to_bytes())
    huge_quantity["lineItems"][1]["quantity"] = "1e999999999"
    foreign = bill("bill-foreign", "acc-1", embed=account("acc-2"))
    async with running_router(settings):
        await publish(
            bs,
            settings.topics.name("bill_generated"),
            [
                (b"a", json.dumps(huge_amount).encode()),
                (b"q", json.dumps(huge_quantity).encode()),
                (b"f", foreign.to_bytes()),
                (b"o", json.dumps(ok).encode()),
            ],
        )
        letters = values(
            await wait_for(bs, settings.topics.name("dead_letter"), lambda r: len(r) >= 3)
        )
        out = await wait_for(bs, settings.topics.dispatch("stripe"), lambda r: len(r) >= 1)
        await asyncio.sleep(1.0)  # a wrongly routed bill would have arrived by now
        out = await read_topic(bs, settings.topics.dispatch("stripe"))
    reasons = {
        json.loads(base64.b64decode(dl["originalValueB64"]))["id"]: dl["reason"] for dl in letters
    }
    assert "lineItems.0.subtotal" in reasons["bill-amount"]
    assert "lineItems.1.quantity" in reasons["bill-quantity"]
    assert "account.id" in reasons["bill-foreign"] and "acc-2" in reasons["bill-foreign"]
    assert [json.loads(r.value)["bill"]["id"] for r in out] == ["bill-ok"]


async def test_two_routers_one_joining_mid_stream_route_everything_without_crashing(
    settings: Settings,
) -> None:
    bs = settings.kafka_bootstrap_servers
    gen = settings.topics.name("bill_generated")
    await _topics_and_one_config(settings)
    acc = account()
    total = 4000
    bills = [bill(f"bill-{i:04d}", embed=acc).to_bytes() for i in range(total)]
    topic = settings.topics.dispatch("stripe")
    # A backlog, so the first router is mid-stream (batches routed, acks and commits
    # pending) when the second joins and takes partitions from it.
    await publish(bs, gen, [(f"k{i}".encode(), b) for i, b in enumerate(bills[:2000])])
    async with running_router(settings) as first:
        await wait_for(bs, topic, lambda r: len(r) >= 100, 60)
        async with running_router(settings) as second:
            publishing = asyncio.create_task(
                publish(bs, gen, [(f"k{i}".encode(), b) for i, b in enumerate(bills[2000:])])
            )
            # Both hold partitions: the rebalance happened while bills were flowing.
            deadline = time.monotonic() + 60
            while not (first._assigned and second._assigned):
                assert time.monotonic() < deadline, "the second router never got partitions"
                await asyncio.sleep(0.1)
            await publishing
            out = await wait_for(
                bs,
                topic,
                lambda r: (
                    {json.loads(x.value)["bill"]["id"] for x in r}
                    >= {f"bill-{i:04d}" for i in range(total)}
                ),
                120,
            )
            end = {p: 0 for p in range(settings.topic_partitions)}
            for record in await read_topic(bs, gen):
                end[record.partition] = max(end[record.partition], record.offset + 1)
            deadline = time.monotonic() + 60
            while await _committed(settings, gen) != end:
                assert time.monotonic() < deadline, (await _committed(settings, gen), end)
                await asyncio.sleep(0.2)
            for router in (first, second):
                assert router.routed_bills > 0
    ids = [json.loads(x.value)["bill"]["id"] for x in out]
    assert set(ids) == {f"bill-{i:04d}" for i in range(total)}


async def test_a_batch_fetched_before_a_rebalance_commits_nothing_after_it(
    settings: Settings,
) -> None:
    """Deterministic form of the race above: a batch routed by a router that has since
    lost partitions must neither crash it (aiokafka refuses commits for unassigned
    partitions) nor commit; the new owner routes those bills."""
    bs = settings.kafka_bootstrap_servers
    gen = settings.topics.name("bill_generated")
    await _topics_and_one_config(settings)
    acc = account()
    await publish(
        bs,
        gen,
        [(f"k{i}".encode(), bill(f"bill-{i:03d}", embed=acc).to_bytes()) for i in range(60)],
    )
    first = RouterService(settings)
    await first.start()
    try:
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        deadline = time.monotonic() + 60
        while len(batch) < settings.topic_partitions:  # one batch from every partition
            assert time.monotonic() < deadline, "the first router got no full batch"
            for tp, records in (await first.consumer.getmany(timeout_ms=500)).items():
                batch.setdefault(tp, records)
        held = set(first.consumer.assignment())
        async with running_router(settings):
            deadline = time.monotonic() + 60
            while set(first.consumer.assignment()) == held:
                assert time.monotonic() < deadline, "no rebalance"
                await asyncio.sleep(0.1)
            await first.process_batch(batch)  # routed and acknowledged; must not raise
            out = await wait_for(
                bs,
                settings.topics.dispatch("stripe"),
                lambda r: (
                    {json.loads(x.value)["bill"]["id"] for x in r}
                    >= {f"bill-{i:03d}" for i in range(60)}
                ),
                60,
            )
    finally:
        await first.stop()
    assert {json.loads(x.value)["bill"]["id"] for x in out} == {f"bill-{i:03d}" for i in range(60)}
