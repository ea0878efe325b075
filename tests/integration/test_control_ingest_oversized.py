"""A 900 KB record on `integration-results` does not stop the control plane's ingester:
its dead letter keeps a prefix (a whole one would be over the broker's limit) and the
results after it are stored (issue 7, item 8)."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime

import pytest

from shared.contracts import IntegrationRun
from shared.kafka.deadletter import ORIGINAL_PREFIX_BYTES
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from tests.support.control import api_for
from tests.support.kafka import publish, values, wait_for

pytestmark = pytest.mark.kafka


async def test_a_900_kb_result_record_is_dead_lettered_and_ingest_goes_on(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    huge = b"[" * (900 * 1024)
    run = IntegrationRun(
        id="r-after",
        entity_id="bill-1",
        integration_config_id="cfg-1",
        destination="STRIPE_TEST",
        status="COMPLETE",
        dt_started=datetime(2026, 3, 1, tzinfo=UTC),
    )
    async with api_for(settings) as api:
        await publish(
            settings.kafka_bootstrap_servers,
            settings.topics.name("integration_results"),
            [(b"same", huge), (b"same", run.to_bytes())],
        )
        deadline = time.monotonic() + 30
        while (await api.call("GET", "/integrationruns/r-after"))[0] != 200:
            assert time.monotonic() < deadline, "the result after the large record was not stored"
            await asyncio.sleep(0.2)
        letters = values(
            await wait_for(
                settings.kafka_bootstrap_servers,
                settings.topics.name("dead_letter"),
                lambda rs: any(v["service"] == "control" for v in values(rs)),
            )
        )
    [letter] = [v for v in letters if v["service"] == "control"]
    assert letter["originalTruncated"] is True and letter["originalValueBytes"] == len(huge)
    assert base64.b64decode(letter["originalValueB64"]) == huge[:ORIGINAL_PREFIX_BYTES]
