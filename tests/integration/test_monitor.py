"""The monitor on a real broker, a real local SMTP server (aiosmtpd) and an HTTP stand-in
for the control plane's disable endpoint (the real one is used in test_monitor_e2e.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from pydantic import SecretStr

from fakes.common.serve import start_app
from services.monitor.service import MonitorService
from services.monitor.settings import MonitorSettings
from services.monitor.state import Phase
from services.webhooks.signature import verify
from shared.contracts import (
    Destination,
    EventType,
    IntegrationConfig,
    IntegrationEvent,
    IntegrationRun,
    RunStatus,
)
from shared.kafka.groups import committed_offsets
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from tests.support.builders import config
from tests.support.kafka import publish, values, wait_for
from tests.support.mail import smtp_server

pytestmark = pytest.mark.kafka

ADMIN = "admin-token-for-tests"


# ---- helpers --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ControlStandIn:
    """The control plane's disable contract: bearer token, idempotent, writes the disabled
    version to integration-configs (it is the single writer of configurations)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.calls: list[tuple[str, str]] = []
        self.configs: dict[str, IntegrationConfig] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _disable(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {ADMIN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        config_id = request.match_info["id"]
        self.calls.append((config_id, (await request.json())["reason"]))
        current = self.configs[config_id]
        if current.enabled:
            current = current.model_copy(update={"enabled": False, "version": current.version + 1})
            await put_configs(self.settings, self, current)
        return web.json_response(current.to_wire())

    async def __aenter__(self) -> ControlStandIn:
        app = web.Application()
        app.add_routes([web.post("/integrationconfigs/{id}/disable", self._disable)])
        self._runner, self.base_url = await start_app(app, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def put_configs(
    settings: Settings, control: ControlStandIn | None, *cfgs: IntegrationConfig
) -> None:
    for c in cfgs:
        if control is not None:
            control.configs[c.id] = c
    await publish(
        settings.kafka_bootstrap_servers,
        settings.topics.name("integration_configs"),
        [(c.id.encode(), c.to_bytes()) for c in cfgs],
    )


def error_event(
    config_id: str, i: int, message: str | None = None, event_id: str | None = None
) -> IntegrationEvent:
    kinds = [
        EventType.PERFORM_ERROR,
        EventType.VALIDATION_ERROR,
        EventType.MISSING_ACCOUNT_MAPPING,
        EventType.AUTHENTICATION_ERROR,
    ]
    return IntegrationEvent(
        id=event_id or f"evt-{config_id}-{i}-{time.monotonic_ns()}",
        event_type=kinds[i % 4],
        message=message or f"error number {i}",
        integration_config_id=config_id,
        integration_run_id=f"run-{config_id}-{i}",
        entity_id=f"bill-{i}",
        destination=Destination.STRIPE_TEST,
        dt_created=datetime.now(UTC),
    )


def run_record(
    config_id: str,
    run_id: str,
    status: RunStatus = RunStatus.COMPLETE,
    destination: Destination = Destination.STRIPE_TEST,
    error: str | None = None,
) -> IntegrationRun:
    return IntegrationRun(
        id=run_id,
        entity_id=f"bill-of-{run_id}",
        entity_version=2,
        integration_config_id=config_id,
        destination=destination,
        status=status,
        dt_started=datetime.now(UTC),
        error=error,
    )


async def put_results(settings: Settings, *records: IntegrationEvent | IntegrationRun) -> None:
    await publish(
        settings.kafka_bootstrap_servers,
        settings.topics.name("integration_results"),
        [(r.integration_config_id.encode(), r.to_bytes()) for r in records],
    )


async def until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.05)


def count(service: MonitorService, config_id: str) -> int:
    state = service.states.get(config_id)
    return state.successive_errors if state else -1


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def monitor_settings(
    control: ControlStandIn | None, smtp_port: int, tmp_path: Path, **extra: Any
) -> MonitorSettings:
    users = tmp_path / "users.yaml"
    users.write_text("- {id: u-alice, email: alice@example.com, name: Alice Ops}\n")
    return MonitorSettings(
        error_threshold=10,
        control_url=control.base_url if control else "http://127.0.0.1:9",
        admin_token=SecretStr(ADMIN),
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_timeout=5,
        users_file=str(users),
        disable_retry_max_delay=1,
        **extra,
    )


@contextlib.asynccontextmanager
async def running_monitor(settings: Settings, ms: MonitorSettings) -> AsyncIterator[MonitorService]:
    service = MonitorService(settings, ms)
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        assert not task.done(), task.exception() if task.done() else None
        service.request_stop()
        await asyncio.wait_for(task, 10)
        await service.stop()


# ---- counting, disabling, notifying ---------------------------------------------------


async def test_tenth_error_disables_once_notifies_and_re_enable_resets(
    settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    cfg = config(
        "cfg-a", name="Stripe US", disabledNotificationUserIds=["ops@example.com", "u-alice"]
    )
    disabled_before = metric("billsync_monitor_configurations_disabled_total")
    with smtp_server() as (mailbox, smtp_port):
        async with ControlStandIn(settings) as control:
            await put_configs(settings, control, cfg)
            ms = monitor_settings(control, smtp_port, tmp_path)
            async with running_monitor(settings, ms) as monitor:
                await put_results(settings, *[error_event("cfg-a", i) for i in range(9)])
                await until(lambda: count(monitor, "cfg-a") == 9, what="9 errors counted")
                await asyncio.sleep(0.5)
                assert control.calls == [] and mailbox.messages == []
                assert (
                    metric("billsync_monitor_successive_errors", {"integration_config_id": "cfg-a"})
                    == 9
                )

                await put_results(
                    settings, error_event("cfg-a", 9, "Stripe said: no such customer cus_404")
                )
                await until(lambda: len(mailbox.messages) == 2, what="two emails")
                assert [c for c, _ in control.calls] == ["cfg-a"]
                assert "10 successive errors" in control.calls[0][1]
                results = settings.topics.name("integration_results")
                recs = await wait_for(
                    settings.kafka_bootstrap_servers,
                    results,
                    lambda rs: any(
                        v.get("eventType") == "integration.disabled.error" for v in values(rs)
                    ),
                )
                disabled = [
                    v for v in values(recs) if v.get("eventType") == "integration.disabled.error"
                ]
                assert len(disabled) == 1 and disabled[0]["integrationConfigId"] == "cfg-a"
                assert "no such customer" in disabled[0]["message"]
                assert sorted(str(m["To"]) for m in mailbox.messages) == [
                    "alice@example.com",
                    "ops@example.com",
                ]
                for message in mailbox.messages:
                    body = message.get_body(("plain",))
                    text = body.get_content() if body else ""
                    assert "Stripe US" in message["Subject"] and "cfg-a" in message["Subject"]
                    assert "cfg-a" in text and "Stripe US" in text
                    assert "no such customer cus_404" in text
                assert (
                    metric("billsync_monitor_configurations_disabled_total") == disabled_before + 1
                )

                # Errors still in flight after the disable: counted, no second disable.
                await put_results(settings, *[error_event("cfg-a", i) for i in range(10, 12)])
                await until(lambda: count(monitor, "cfg-a") == 12, what="late errors")
                await until(lambda: monitor.states["cfg-a"].phase is Phase.DISABLED)
                # Re-enabling (a newer enabled version) resets the count.
                await until(lambda: getattr(monitor.configs.get("cfg-a"), "enabled", 1) is False)
                await put_configs(settings, control, cfg.model_copy(update={"version": 3}))
                await until(lambda: count(monitor, "cfg-a") == 0, what="reset on re-enable")
                await put_results(settings, *[error_event("cfg-a", i) for i in range(20, 29)])
                await until(lambda: count(monitor, "cfg-a") == 9)
                await asyncio.sleep(0.5)
                assert len(control.calls) == 1 and len(mailbox.messages) == 2


async def test_success_resets_and_redelivered_events_are_not_double_counted(
    settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    with smtp_server() as (_, smtp_port):
        async with ControlStandIn(settings) as control:
            await put_configs(settings, control, config("cfg-b"))
            async with running_monitor(
                settings, monitor_settings(control, smtp_port, tmp_path)
            ) as monitor:
                first = [error_event("cfg-b", i) for i in range(7)]
                await put_results(settings, *first, *first)  # every event delivered twice
                await until(lambda: count(monitor, "cfg-b") == 7, what="7 distinct errors")
                await put_results(settings, run_record("cfg-b", "run-ok-1"))
                await until(lambda: count(monitor, "cfg-b") == 0, what="reset by success")
                second = [error_event("cfg-b", i) for i in range(9)]
                await put_results(settings, *second, *second[:5], run_record("cfg-b", "run-ok-1"))
                await until(lambda: count(monitor, "cfg-b") == 9, what="9 errors")
                await asyncio.sleep(0.7)  # a duplicate or the old success would show by now
                assert count(monitor, "cfg-b") == 9
                assert control.calls == []


async def test_internal_errors_never_count_toward_auto_disable_nor_reset(
    settings: Settings, tmp_path: Path
) -> None:
    """The sink reports our own bugs as their own event type: whatever it is called, only
    the provider-facing allow-list counts, and nothing outside it resets the count."""
    await ensure_topics(settings)
    with smtp_server() as (_, smtp_port):
        async with ControlStandIn(settings) as control:
            await put_configs(settings, control, config("cfg-i"))
            async with running_monitor(
                settings, monitor_settings(control, smtp_port, tmp_path)
            ) as monitor:
                await put_results(settings, *[error_event("cfg-i", i) for i in range(5)])
                internal = []
                for i in range(8):  # would disable (5 + 8 > 10) if they counted
                    wire = json.loads(error_event("cfg-i", 100 + i).to_bytes())
                    wire["eventType"] = "integration.internal.error"
                    internal.append((b"cfg-i", json.dumps(wire).encode()))
                internal.append((b"cfg-i", b'{"recordType": "event", "id": '))  # unreadable
                await publish(
                    settings.kafka_bootstrap_servers,
                    settings.topics.name("integration_results"),
                    internal,
                )
                # Two more provider errors after them on the same partition: 7, not 2 or 15.
                await put_results(settings, *[error_event("cfg-i", i) for i in range(5, 7)])
                await until(lambda: count(monitor, "cfg-i") >= 7, what="7 errors counted")
                assert count(monitor, "cfg-i") == 7
                assert monitor.states["cfg-i"].phase is Phase.COUNTING
                assert control.calls == []


async def test_count_survives_a_restart(settings: Settings, tmp_path: Path) -> None:
    await ensure_topics(settings)
    with smtp_server() as (mailbox, smtp_port):
        async with ControlStandIn(settings) as control:
            await put_configs(
                settings, control, config("cfg-c", disabledNotificationUserIds=["ops@example.com"])
            )
            ms = monitor_settings(control, smtp_port, tmp_path)
            async with running_monitor(settings, ms) as monitor:
                await put_results(settings, *[error_event("cfg-c", i) for i in range(6)])
                await until(lambda: count(monitor, "cfg-c") == 6)
            async with running_monitor(settings, ms) as monitor:
                assert count(monitor, "cfg-c") == 6  # loaded from the state topic
                await asyncio.sleep(0.5)
                assert count(monitor, "cfg-c") == 6  # committed input is not re-counted
                await put_results(settings, *[error_event("cfg-c", i) for i in range(6, 10)])
                await until(lambda: len(mailbox.messages) == 1, what="disable email")
                assert [c for c, _ in control.calls] == ["cfg-c"]


async def test_failing_smtp_is_counted_and_does_not_stop_the_monitor(
    settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    before = metric("billsync_monitor_notification_failures_total", {"reason": "smtp"})
    unknown_before = metric(
        "billsync_monitor_notification_failures_total", {"reason": "unknown_user"}
    )
    with smtp_server(reject=True) as (_, smtp_port):
        async with ControlStandIn(settings) as control:
            await put_configs(
                settings,
                control,
                config(
                    "cfg-d", disabledNotificationUserIds=["ops@example.com", "u-alice", "u-ghost"]
                ),
                config("cfg-e"),
            )
            async with running_monitor(
                settings, monitor_settings(control, smtp_port, tmp_path)
            ) as monitor:
                await put_results(settings, *[error_event("cfg-d", i) for i in range(10)])
                await until(
                    lambda: (
                        metric("billsync_monitor_notification_failures_total", {"reason": "smtp"})
                        == before + 2
                    ),
                    what="failures",
                )
                assert (
                    metric(
                        "billsync_monitor_notification_failures_total", {"reason": "unknown_user"}
                    )
                    == unknown_before + 1
                )
                await until(lambda: monitor.states["cfg-d"].phase is Phase.DISABLED)
                assert [c for c, _ in control.calls] == ["cfg-d"]
                await put_results(settings, error_event("cfg-e", 1))  # still consuming
                await until(lambda: count(monitor, "cfg-e") == 1)


# ---- outbound provider-error webhook --------------------------------------------------


async def outbox_committed(settings: Settings) -> int:
    offsets = await committed_offsets(
        settings.kafka_bootstrap_servers, f"{settings.consumer_group_prefix}-monitor-webhooks"
    )
    return sum(offsets.values())


class Receiver:
    """Answers 500 to the first delivery of `flaky` runs and to every delivery of `broken`."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, Any], str, bytes]] = []
        self.accepted: list[str] = []  # run ids answered 2xx
        self.down = False  # answer 503 to everything
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        event = json.loads(body)
        self.requests.append((event, request.headers.get("Billsync-Signature", ""), body))
        run_id = event["data"]["run_id"]
        if self.down:
            return web.Response(status=503)
        seen = sum(1 for e, _, _ in self.requests if e["data"]["run_id"] == run_id)
        if run_id.startswith("broken") or (run_id.startswith("flaky") and seen == 1):
            return web.Response(status=500)
        self.accepted.append(run_id)
        return web.Response(status=204)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.add_routes([web.post("/hook", self._hook)])
        self._runner, base = await start_app(app, "127.0.0.1", 0)
        self.url = base + "/hook"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def for_run(self, run_id: str) -> list[tuple[dict[str, Any], str, bytes]]:
        return [r for r in self.requests if r[0]["data"]["run_id"] == run_id]


async def test_provider_error_webhook_is_signed_and_retried(
    settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    dropped = metric("billsync_monitor_provider_error_webhooks_total", {"outcome": "dropped"})
    async with Receiver() as receiver:
        ms = monitor_settings(
            None,
            free_port(),
            tmp_path,
            webhook_url=receiver.url,
            webhook_secret=SecretStr("whsec_ops"),
            webhook_max_attempts=3,
            webhook_base_delay=0.05,
            webhook_max_delay=0.2,
        )
        async with running_monitor(settings, ms):
            await put_results(
                settings,
                run_record("cfg-s", "flaky-1", RunStatus.ERROR, error="No such customer"),
                run_record("cfg-s", "broken-1", RunStatus.AUTH_FAILED, error="bad key"),
                run_record("cfg-s", "fine-1", RunStatus.COMPLETE),
                run_record("cfg-p", "paddle-1", RunStatus.ERROR, Destination.PADDLE, "x"),
            )
            await until(lambda: len(receiver.for_run("flaky-1")) == 2, what="retry after 500")
            await until(
                lambda: (
                    metric("billsync_monitor_provider_error_webhooks_total", {"outcome": "dropped"})
                    == dropped + 1
                ),
                what="drop",
            )
    assert len(receiver.for_run("broken-1")) == 3  # bounded attempts
    assert receiver.for_run("fine-1") == [] and receiver.for_run("paddle-1") == []
    for event, header, body in receiver.for_run("flaky-1"):
        verify(header, body, "whsec_ops")  # raises when the signature is wrong
        assert event["type"] == "invoice.billing_provider_error"
        assert isinstance(event["created"], int) and event["id"].startswith("evt_")
        assert event["data"] == {
            "bill_id": "bill-of-flaky-1",
            "bill_version": 2,
            "config_id": "cfg-s",
            "run_id": "flaky-1",
            "destination": "STRIPE_TEST",
            "status": "ERROR",
            "error": "No such customer",
            "account_id": None,
        }
    first, second = receiver.for_run("flaky-1")
    assert first[0]["id"] == second[0]["id"]  # the same event, re-signed per attempt


async def test_queued_provider_error_webhook_survives_a_restart_and_is_sent_once(
    settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    async with Receiver() as receiver:
        receiver.down = True
        ms = monitor_settings(
            None,
            free_port(),
            tmp_path,
            webhook_url=receiver.url,
            webhook_secret=SecretStr("whsec_ops"),
            webhook_max_attempts=10_000,  # still retrying when the monitor stops
            webhook_base_delay=0.05,
            webhook_max_delay=0.2,
        )
        async with running_monitor(settings, ms):
            await put_results(
                settings, run_record("cfg-q", "queued-1", RunStatus.ERROR, error="Stripe 503")
            )
            await until(lambda: len(receiver.for_run("queued-1")) >= 2, what="retrying")
        receiver.down = False
        for later in ("later-1", "later-2"):  # sent by the next start, not by the one after
            async with running_monitor(settings, ms):
                await put_results(settings, run_record("cfg-q", later, RunStatus.ERROR, error="x"))
                await until(lambda: "queued-1" in receiver.accepted, what="the queued one")
                # Committed only when it and everything before it are finished.
                outbox_end = 3 if later == "later-2" else 2
                deadline = time.monotonic() + 20
                while await outbox_committed(settings) < outbox_end:
                    assert time.monotonic() < deadline, "outbox offsets not committed"
                    await asyncio.sleep(0.05)
    assert receiver.accepted.count("queued-1") == 1
    assert receiver.accepted.count("later-1") == receiver.accepted.count("later-2") == 1
    assert len({e["id"] for e, _, _ in receiver.for_run("queued-1")}) == 1  # one event id
