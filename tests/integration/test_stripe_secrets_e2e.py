"""Issue 8.4: a full run with a refused Stripe key leaves no fragment of the key anywhere.

The key is stored and the configuration created through the control plane's API. Ten bills
go through the real router and the real Stripe sink (real broker) to the local Stripe,
which refuses the key the way Stripe does ("Invalid API Key provided: sk_test_****01zz");
the control plane ingests the results and the monitor disables the configuration after ten
successive errors and e-mails its user. Then everything the run wrote is scanned: the
integration-results and invoice-map topics, the runs, events, configuration and credential
as the control API returns them, the e-mail, and every log line (structlog on stdout and
stderr, and the stripe SDK's own log records at DEBUG)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from services.monitor.service import MonitorService
from services.monitor.settings import MonitorSettings
from shared.contracts import RunStatus
from shared.redact import REDACTED
from shared.settings import Settings
from tests.support.builders import account, bill, line
from tests.support.control import running_control_plane
from tests.support.kafka import publish, read_topic
from tests.support.mail import smtp_server
from tests.support.services import running_router
from tests.support.stripe_stack import stripe_stack

pytestmark = pytest.mark.kafka

GOOD_KEY = "sk_test_good"
# A realistic key: Stripe echoes its last four characters ("01zz") behind asterisks.
BAD_SECRET = "51QxTy7LmNoPqRsTuVwXyZaBcDeFgHiJkLmNoPqRsT3v9W01zz"
BAD_KEY = f"sk_test_{BAD_SECRET}"
BILLS = 10  # the monitor's threshold: the configuration is disabled and its user mailed


def leaks(text: str) -> list[str]:
    """Every fragment of the bad key in `text`: 4+ characters of its secret part, or the
    asterisk mask Stripe puts in front of the last four (its length gives the key's)."""
    found = {BAD_SECRET[i : i + 4] for i in range(len(BAD_SECRET) - 3)} & set(
        re.findall(r"(?=([A-Za-z0-9]{4}))", text)
    )
    found |= set(re.findall(r"[A-Za-z0-9]*\*{2,}[A-Za-z0-9]*", text))
    return sorted(found)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_a_refused_key_leaves_no_fragment_anywhere(
    settings: Settings,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="stripe")
    users = tmp_path / "users.yaml"
    users.write_text("- {id: u-ops, email: ops@example.com, name: Ops}\n")
    api_texts: list[str] = []
    async with stripe_stack(settings, keys=(GOOD_KEY,), customers=BILLS) as stack:
        plane_settings = stack.settings.model_copy(update={"credentials_key": SecretStr(stack.key)})
        with smtp_server() as (mailbox, smtp_port):
            async with (
                running_control_plane(plane_settings, users_file=users) as cp,
                aiohttp.ClientSession(cp.base_url, headers=cp.admin_headers) as http,
            ):

                async def call(method: str, path: str, **kwargs: Any) -> Any:
                    async with http.request(method, path, **kwargs) as resp:
                        text = await resp.text()
                        api_texts.append(text)
                        assert resp.status < 300, f"{method} {path}: {resp.status} {text}"
                        return await resp.json()

                credential = {"type": "STRIPE", "id": "cred-bad", "apiKey": BAD_KEY}
                await call("POST", "/integrationcredentials", json=credential)
                configuration = {
                    "id": "cfg-s",
                    "name": "Stripe test",
                    "destination": "STRIPE_TEST",
                    "integrationCredentialsId": "cred-bad",
                    "disabledNotificationUserIds": ["u-ops"],
                }
                await call("POST", "/integrationconfigs", json=configuration)
                monitor = MonitorService(
                    plane_settings,
                    MonitorSettings(
                        control_url=cp.base_url,
                        admin_token=SecretStr(cp.admin_token),
                        smtp_host="127.0.0.1",
                        smtp_port=smtp_port,
                        users_file=str(users),
                    ),
                )
                await monitor.start()
                monitor_task = asyncio.create_task(monitor.run())
                try:
                    async with running_router(stack.settings), stack.sink():
                        await publish(
                            stack.settings.kafka_bootstrap_servers,
                            stack.settings.topics.name("bill_generated"),
                            [(b.id.encode(), b.to_bytes()) for b in _bills()],
                        )
                        runs = await stack.wait_final_runs(BILLS, timeout=90)

                        async def mailed() -> bool:
                            return len(mailbox.messages) >= 1

                        await until(mailed, "the auto-disable e-mail")
                finally:
                    monitor.request_stop()
                    await asyncio.wait_for(monitor_task, 10)
                    await monitor.stop()

                async def ingested() -> bool:
                    runs_page = await call(
                        "GET", "/integrationruns", params={"status": "AUTH_FAILED"}
                    )
                    events_page = await call("GET", "/integrationevents")
                    return len(runs_page["data"]) >= BILLS and len(events_page["data"]) > BILLS

                await until(ingested, "the control plane to ingest the runs and events")
                view = await call("GET", "/integrationconfigs/cfg-s")
                assert view["enabled"] is False
                await call("GET", "/integrationcredentials/cred-bad")
                await call("GET", "/integrationconfigs/cfg-s/changes")  # the disable reason
                await call("GET", "/integrationconfigs/cfg-s/connection")
        assert stack.fake.stats["requests"] > 0  # the local Stripe did refuse the key
        results = await read_topic(
            stack.settings.kafka_bootstrap_servers,
            stack.settings.topics.name("integration_results"),
        )
        invoice_map = await read_topic(
            stack.settings.kafka_bootstrap_servers, stack.settings.topics.name("invoice_map")
        )

    assert {r.status for r in runs.values()} == {RunStatus.AUTH_FAILED}
    for run in runs.values():
        # The message still says what is wrong and which kind of key to fix.
        assert run.error is not None
        assert f"Invalid API Key provided: sk_test_{REDACTED} " in run.error
    written = {
        "integration-results": [(r.value or b"").decode() for r in results],
        "invoice-map": [(r.value or b"").decode() for r in invoice_map],
        "control API": api_texts,
        # Decoded too: a quoted-printable line break could split a fragment in the raw form.
        "e-mail": [t for m in mailbox.messages for t in (_text(m), m.as_string())],
        "SDK log records": [r.getMessage() for r in caplog.records],
        "stdout/stderr": list(capfd.readouterr()),
    }
    assert all(written[k] for k in ("integration-results", "invoice-map", "e-mail"))
    assert any("API error received" in t for t in written["SDK log records"])
    assert "Invalid API Key provided: sk_test_" in written["e-mail"][0], written["e-mail"][0]
    found = {where: leaks("\n".join(texts)) for where, texts in written.items()}
    assert not any(found.values()), f"fragments of the key: {found}"


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    content = body.get_content() if isinstance(body, EmailMessage) else ""
    return f"{message['Subject']}\n{content}"


def _bills() -> list[Any]:
    return [
        bill(f"bill-{i}", f"acc-{i}", embed=account(f"acc-{i}"), lines=[line(f"l{i}")])
        for i in range(1, BILLS + 1)
    ]
