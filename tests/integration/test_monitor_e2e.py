"""Auto-disable end to end with the real control plane: 10 successive errors on the results
topic -> the configuration is disabled through the API, the disabled event is stored by the
control plane, the users are emailed, and re-enabling through the API resets the count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from services.monitor.service import MonitorService
from services.monitor.settings import MonitorSettings
from shared.contracts import Destination, EventType, IntegrationEvent
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from tests.support.control import running_control_plane
from tests.support.kafka import publish
from tests.support.mail import smtp_server

pytestmark = pytest.mark.kafka


async def _until(predicate: Callable[[], Any], what: str, timeout: float = 25.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_ten_errors_disable_through_the_real_control_plane(
    settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    users = tmp_path / "users.yaml"
    users.write_text("- {id: u-alice, email: alice@example.com, name: Alice Ops}\n")
    with smtp_server() as (mailbox, smtp_port):
        async with (
            running_control_plane(settings, users_file=users) as cp,
            aiohttp.ClientSession(cp.base_url, headers=cp.admin_headers) as http,
        ):
            cfg = {
                "id": "cfg-e2e",
                "name": "Stripe EU",
                "destination": "STRIPE_TEST",
                "disabledNotificationUserIds": ["ops@example.com", "u-alice"],
            }
            async with http.post("/integrationconfigs", json=cfg) as resp:
                assert resp.status == 201, await resp.text()

            async def config_view() -> dict[str, Any]:
                async with http.get("/integrationconfigs/cfg-e2e") as resp:
                    data: dict[str, Any] = await resp.json()
                    return data

            ms = MonitorSettings(
                control_url=cp.base_url,
                admin_token=SecretStr(cp.admin_token),
                smtp_host="127.0.0.1",
                smtp_port=smtp_port,
                users_file=str(users),
            )
            monitor = MonitorService(settings, ms)
            await monitor.start()
            task = asyncio.create_task(monitor.run())
            try:
                errors = [
                    IntegrationEvent(
                        id=f"evt-e2e-{i}",
                        event_type=EventType.PERFORM_ERROR,
                        message=f"Stripe 500 on attempt {i}",
                        integration_config_id="cfg-e2e",
                        integration_run_id=f"run-{i}",
                        entity_id=f"bill-{i}",
                        destination=Destination.STRIPE_TEST,
                        dt_created=datetime.now(UTC),
                    )
                    for i in range(10)
                ]
                await publish(
                    settings.kafka_bootstrap_servers,
                    settings.topics.name("integration_results"),
                    [(b"cfg-e2e", e.to_bytes()) for e in errors],
                )

                async def disabled() -> bool:
                    return (await config_view())["enabled"] is False

                await _until(disabled, "the control plane to disable the configuration")

                async def event_stored() -> bool:
                    async with http.get(
                        "/integrationevents",
                        params={
                            "eventType": "integration.disabled.error",
                            "integrationConfigId": "cfg-e2e",
                        },
                    ) as resp:
                        return len((await resp.json())["data"]) == 1

                await _until(event_stored, "the disabled event in the control plane")

                async def mailed() -> bool:
                    return len(mailbox.messages) == 2

                await _until(mailed, "two notification emails")
                assert sorted(str(m["To"]) for m in mailbox.messages) == [
                    "alice@example.com",
                    "ops@example.com",
                ]

                async with http.post(
                    "/integrationconfigs/cfg-e2e/enable", json={"reason": "fixed"}
                ) as resp:
                    assert resp.status == 200, await resp.text()

                async def reset() -> bool:
                    return monitor.states["cfg-e2e"].successive_errors == 0

                await _until(reset, "the count to reset after re-enabling")
            finally:
                monitor.request_stop()
                await asyncio.wait_for(task, 10)
                await monitor.stop()
