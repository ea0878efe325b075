"""Issue 8.4: a full run with a refused Stripe key leaves no fragment of the key anywhere.

Bills go through the real router and the real Stripe sink (real broker) to the local
Stripe, which refuses the key the way Stripe does ("Invalid API Key provided:
sk_test_****01zz"); the control plane ingests the results. Then everything the run wrote is
scanned: the integration-results topic, the invoice-map topic, the runs and events as the
control API returns them, and every log line (structlog on stdout/stderr, and the stripe
SDK's own log records, at DEBUG)."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import aiohttp
import pytest
from pydantic import SecretStr

from shared.contracts import RunStatus
from shared.redact import REDACTED
from shared.settings import Settings
from tests.support.builders import account, bill, config, line
from tests.support.control import running_control_plane
from tests.support.kafka import publish, read_topic
from tests.support.services import running_router
from tests.support.stripe_stack import stripe_stack

pytestmark = pytest.mark.kafka

GOOD_KEY = "sk_test_good"
# A realistic key: Stripe echoes its last four characters ("01zz") behind asterisks.
BAD_SECRET = "51QxTy7LmNoPqRsTuVwXyZaBcDeFgHiJkLmNoPqRsT3v9W01zz"
BAD_KEY = f"sk_test_{BAD_SECRET}"
BILLS = 3


def leaks(text: str) -> list[str]:
    """Every fragment of the bad key in `text`: 4+ characters of its secret part, or the
    asterisk mask Stripe puts in front of the last four (its length gives the key's)."""
    found = {BAD_SECRET[i : i + 4] for i in range(len(BAD_SECRET) - 3)} & set(
        re.findall(r"[A-Za-z0-9]{4}", text)
    )
    found |= {m for m in re.findall(r"[A-Za-z0-9]*\*{2,}[A-Za-z0-9]*", text)}
    return sorted(f for f in found if f in text)


async def test_a_refused_key_leaves_no_fragment_anywhere(
    settings: Settings, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="stripe")
    async with stripe_stack(settings, keys=(GOOD_KEY,), customers=BILLS) as stack:
        await stack.credential("cred-bad", BAD_KEY)
        await stack.configs(
            config("cfg-s", "STRIPE_TEST", integrationCredentialsId="cred-bad", dest=None)
        )
        items = [
            bill(f"bill-{i}", f"acc-{i}", embed=account(f"acc-{i}"), lines=[line(f"l{i}")])
            for i in range(1, BILLS + 1)
        ]
        async with (
            running_control_plane(
                stack.settings.model_copy(update={"credentials_key": SecretStr(stack.key)})
            ) as cp,
            aiohttp.ClientSession(cp.base_url, headers=cp.read_headers) as http,
            running_router(stack.settings),
            stack.sink(),
        ):
            await publish(
                stack.settings.kafka_bootstrap_servers,
                stack.settings.topics.name("bill_generated"),
                [(b.id.encode(), b.to_bytes()) for b in items],
            )
            runs = await stack.wait_final_runs(BILLS)
            assert {r.status for r in runs.values()} == {RunStatus.AUTH_FAILED}
            # The message still says what is wrong and which kind of key to fix.
            for run in runs.values():
                assert run.error is not None
                assert f"Invalid API Key provided: sk_test_{REDACTED} " in run.error
            api_texts = await _control_api_texts(http, BILLS)
        assert stack.fake.stats["requests"] > 0  # the local Stripe did refuse the key

        results = await read_topic(
            stack.settings.kafka_bootstrap_servers,
            stack.settings.topics.name("integration_results"),
        )
        invoice_map = await read_topic(
            stack.settings.kafka_bootstrap_servers, stack.settings.topics.name("invoice_map")
        )
    written = {
        "integration-results": [(r.value or b"").decode() for r in results],
        "invoice-map": [(r.value or b"").decode() for r in invoice_map],
        "control API": api_texts,
        "SDK log records": [r.getMessage() for r in caplog.records],
        "stdout/stderr": list(capfd.readouterr()),
    }
    assert written["integration-results"] and written["invoice-map"]
    assert any("API error received" in t for t in written["SDK log records"]), caplog.records
    found = {where: leaks("\n".join(texts)) for where, texts in written.items()}
    assert not any(found.values()), f"fragments of the key: {found}"


async def _control_api_texts(http: aiohttp.ClientSession, bills: int) -> list[str]:
    """Runs and events as the control API returns them, once it has ingested them all."""
    deadline = time.monotonic() + 30
    while True:
        async with http.get("/integrationruns", params={"status": "AUTH_FAILED"}) as resp:
            runs = await resp.text()
            page = await resp.json() if resp.status == 200 else {}
        async with http.get("/integrationevents") as resp:
            events = await resp.text()
            event_page = await resp.json() if resp.status == 200 else {}
        if len(page.get("data", [])) >= bills and len(event_page.get("data", [])) >= bills:
            return [runs, events]
        if time.monotonic() > deadline:
            raise AssertionError(f"control plane did not ingest the runs: {runs} {events}")
        await asyncio.sleep(0.2)
