"""`billsync replay` on a real broker: exact ReplayRequests for offset, time, partition,
account and configuration selections; dry runs; clear errors for bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.replay.options import ReplayInputError, ReplayOptions
from services.replay.runner import Replayer, ReplayStats
from shared.contracts import ReplayRequest
from shared.kafka.client_options import kafka_options
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from shared.sinks.invoice_map import InvoiceMapRecord, InvoiceState
from tests.support.builders import account, bill, config
from tests.support.kafka import publish, read_topic
from tests.support.services import ROOT, service_env

pytestmark = pytest.mark.kafka

T0 = 1_800_000_000_000  # ms
MINUTE = 60_000


async def seed(settings: Settings) -> None:
    """p0: bill-0..bill-4 at T0+0..4 min (acc-1 even, acc-2 odd); p1: bill-5..7 at
    T0+10..12 min; p2 empty. A malformed record closes p1."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(**kafka_options(settings.kafka_bootstrap_servers), acks="all")
    await producer.start()
    topic = settings.topics.name("bill_generated")
    try:
        for i in range(8):
            partition, minute = (0, i) if i < 5 else (1, 5 + i)
            b = bill(f"bill-{i}", f"acc-{1 + i % 2}", version=i + 1)
            await producer.send_and_wait(
                topic,
                b.to_bytes(),
                key=b.id.encode(),
                partition=partition,
                timestamp_ms=T0 + minute * MINUTE,
            )
        await producer.send_and_wait(
            topic, b"{oops", key=b"bad", partition=1, timestamp_ms=T0 + 13 * MINUTE
        )
    finally:
        await producer.stop()


async def replay(settings: Settings, **fields: Any) -> tuple[ReplayStats, str, str]:
    out, err = io.StringIO(), io.StringIO()
    opts = ReplayOptions(topic_field=fields.pop("topic_field", "bill_generated"), **fields)
    stats = await Replayer(settings, opts, out, err, progress_records=2).run()
    return stats, out.getvalue(), err.getvalue()


async def requests_of(settings: Settings, replay_id: str) -> list[ReplayRequest]:
    records = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.name("bill_replay")
    )
    reqs = [ReplayRequest.model_validate_json(r.value or b"") for r in records]
    return sorted(
        (r for r in reqs if r.replay_id == replay_id),
        key=lambda r: (r.source_partition, r.source_offset),
    )


def positions(reqs: list[ReplayRequest]) -> list[tuple[int, int, str]]:
    return [(r.source_partition, r.source_offset, r.bill.id) for r in reqs]


async def test_ranges_and_filters_produce_exactly_the_expected_requests(
    settings: Settings,
) -> None:
    await seed(settings)
    await publish(
        settings.kafka_bootstrap_servers,
        settings.topics.name("integration_configs"),
        [(b"cfg-x", config("cfg-x").to_bytes())],
    )
    source = settings.topics.name("bill_generated")

    stats, out, err = await replay(settings, from_offset=1, to_offset=2)
    reqs = await requests_of(settings, stats.replay_id)
    assert positions(reqs) == [
        (0, 1, "bill-1"),
        (0, 2, "bill-2"),
        (1, 1, "bill-6"),
        (1, 2, "bill-7"),
    ]
    assert all(
        r.source_topic == source and not r.approved_source and r.config_ids is None for r in reqs
    )
    assert reqs[0].bill == bill("bill-1", "acc-2", version=2)
    assert (stats.read, stats.selected, stats.published) == (4, 4, 4)
    assert "published 4" in out and "replay: read=" in err  # summary and progress

    stats, _, _ = await replay(settings, from_offset=0, partition=1)
    assert positions(await requests_of(settings, stats.replay_id)) == [
        (1, 0, "bill-5"),
        (1, 1, "bill-6"),
        (1, 2, "bill-7"),
    ]
    assert stats.malformed == 1  # the bad record at p1@3 is counted, not published

    stats, _, _ = await replay(settings, from_time_ms=T0 + MINUTE, to_time_ms=T0 + 3 * MINUTE)
    assert positions(await requests_of(settings, stats.replay_id)) == [
        (0, 1, "bill-1"),
        (0, 2, "bill-2"),
    ]

    stats, _, _ = await replay(settings, from_time_ms=T0 + 3 * MINUTE, to_offset=0)
    # p0 reaches 3 min only at offset 3, past the bound; all of p1 is later than 3 min.
    assert positions(await requests_of(settings, stats.replay_id)) == [(1, 0, "bill-5")]

    stats, _, _ = await replay(
        settings, from_offset=0, accounts=frozenset({"acc-1"}), config_ids=("cfg-x",)
    )
    reqs = await requests_of(settings, stats.replay_id)
    assert [r.bill.id for r in reqs] == ["bill-0", "bill-2", "bill-4", "bill-6"]
    assert all(r.config_ids == ["cfg-x"] for r in reqs)
    assert stats.skipped_account == 4


async def test_dry_run_reports_configurations_and_invoices_and_publishes_nothing(
    settings: Settings,
) -> None:
    await seed(settings)
    bs = settings.kafka_bootstrap_servers
    cfgs = [
        config("cfg-x"),
        config("cfg-y", "XERO", restrictedAccountIds=["acc-2"]),
        config("cfg-z", "SALESFORCE", entity={"onlySendBillOnApproval": True}),
        config("cfg-off", enabled=False),
    ]
    await publish(
        bs,
        settings.topics.name("integration_configs"),
        [(c.id.encode(), c.to_bytes()) for c in cfgs],
    )
    await publish(
        bs,
        settings.topics.name("accounts"),
        [(a.encode(), account(a).to_bytes()) for a in ("acc-1", "acc-2")],
    )
    existing = InvoiceMapRecord(
        integration_config_id="cfg-x",
        bill_id="bill-0",
        bill_version=1,
        state=InvoiceState.FINALIZED,
        external_id="in_000",
        updated_at=datetime.now(UTC),
    )
    await publish(
        bs, settings.topics.name("invoice_map"), [(existing.key.encode(), existing.to_bytes())]
    )

    _, out, _ = await replay(settings, from_offset=0, to_offset=1, partition=0, dry_run=True)
    assert "p0@0 bill bill-0 v1 account acc-1" in out
    assert "-> cfg-x (STRIPE_TEST): existing invoice in_000 FINALIZED" in out
    assert "-> cfg-y (XERO): no invoice yet (would create)" in out
    assert "awaiting_approval=1" in out and "configuration_disabled=1" in out
    assert "would publish 2" in out

    _, out, _ = await replay(
        settings,
        from_offset=0,
        to_offset=1,
        partition=0,
        dry_run=True,
        json=True,
        config_ids=("cfg-x", "cfg-y"),
    )
    lines = [json.loads(line) for line in out.splitlines()]
    plans, summary = lines[:-1], lines[-1]["summary"]
    assert [p["billId"] for p in plans] == ["bill-0", "bill-1"]
    assert plans[0]["configurations"] == [
        {
            "integrationConfigId": "cfg-x",
            "destination": "STRIPE_TEST",
            "existingInvoice": {"state": "FINALIZED", "externalId": "in_000"},
        },
        {"integrationConfigId": "cfg-y", "destination": "XERO", "existingInvoice": None},
    ]
    assert [c["integrationConfigId"] for c in plans[1]["configurations"]] == ["cfg-x"]
    assert plans[1]["filtered"] == {"deny_list": 1, "replay_not_selected": 2}
    assert summary["dry_run"] is True and summary["selected"] == 2
    assert summary["published"] == 0
    assert await read_topic(bs, settings.topics.name("bill_replay")) == []


async def test_bad_input_gets_a_clear_error(settings: Settings) -> None:
    await seed(settings)
    await publish(
        settings.kafka_bootstrap_servers,
        settings.topics.name("integration_configs"),
        [(b"cfg-x", config("cfg-x").to_bytes())],
    )
    with pytest.raises(ReplayInputError, match=r"offset 50 is out of range: past the end"):
        await replay(settings, from_offset=50)
    with pytest.raises(ReplayInputError, match=r"offset 9 is out of range.*p0: 0\.\.4"):
        await replay(settings, from_offset=9, partition=0)
    with pytest.raises(ReplayInputError, match=r"partition 7 does not exist.*0\.\.2"):
        await replay(settings, from_offset=0, partition=7)
    with pytest.raises(ReplayInputError, match=r"unknown configuration.*cfg-nope.*known: cfg-x"):
        await replay(settings, from_offset=0, config_ids=("cfg-nope",))
    assert (
        await read_topic(settings.kafka_bootstrap_servers, settings.topics.name("bill_replay"))
        == []
    )

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.replay", *argv],
            cwd=ROOT,
            env=service_env(settings, BILLSYNC_LOG_LEVEL="INFO"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    bad = cli("--topic", "bill-generated", "--from-offset", "5", "--to-offset", "2")
    assert bad.returncode == 2 and "after --to-offset 2" in bad.stderr
    bad = cli("--topic", "invoices", "--from-offset", "0")
    assert bad.returncode == 2 and "unknown topic 'invoices'" in bad.stderr
    good = cli("--topic", "bill-generated", "--from-offset", "3", "--partition", "0", "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout.splitlines()[-1])["summary"]["published"] == 2
    # Text mode: human lines on stdout (log lines go to stderr), and an empty range says so.
    empty = cli("--topic", "bill-generated", "--from-time", "2099-01-01")
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.strip() and not any(
        line.startswith("{") for line in empty.stdout.splitlines()
    )
    assert "nothing to replay" in empty.stdout and "replay_finished" in empty.stderr
