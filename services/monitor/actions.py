"""What happens at the threshold, outside the results consumer so a slow control plane or
SMTP server never stalls it: disable (retried with backoff), publish the
`integration.disabled.error` event, email the configuration's users, mark the state.

The state says DISABLE_PENDING durably before this runs, so a crash at any step resumes
here on the next start (the disable is idempotent and the event id is derived from the
decision). The end of the actions is recorded through `mark_disabled`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.monitor import metrics as m
from services.monitor.disabler import ConfigDisabler, DisableError
from services.monitor.mailer import DisabledNotice, Mailer
from services.monitor.redact import redact
from services.monitor.settings import MonitorSettings
from services.monitor.state import ConfigErrorState, Phase
from shared.contracts import EventType, IntegrationConfig, IntegrationEvent
from shared.logging import get_logger
from shared.sinks.backoff import RetryPolicy

log = get_logger("monitor")


def disable_reason(state: ConfigErrorState, threshold: int) -> str:
    return (
        f"disabled by billsync monitor after {state.successive_errors} successive errors "
        f"(threshold {threshold}); last error: {redact(state.last_error) or '-'}"
    )[:1000]


class DisableActions:
    def __init__(
        self,
        settings: MonitorSettings,
        results_topic: str,
        producer: AIOKafkaProducer,
        disabler: ConfigDisabler,
        mailer: Mailer,
        state_of: Callable[[str], ConfigErrorState | None],
        config_of: Callable[[str], IntegrationConfig | None],
        mark_disabled: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self._s = settings
        self._topic = results_topic
        self._producer = producer
        self._disabler = disabler
        self._mailer = mailer
        self._state_of = state_of
        self._config_of = config_of
        self._mark_disabled = mark_disabled
        self._policy = RetryPolicy(
            max_attempts=1_000_000, base_delay=0.5, max_delay=settings.disable_retry_max_delay
        )
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()

    def submit(self, config_id: str) -> None:
        if config_id not in self._queued:
            self._queued.add(config_id)
            self.queue.put_nowait(config_id)

    def _pending(self, config_id: str, decision: str | None) -> bool:
        state = self._state_of(config_id)
        return (
            state is not None
            and state.phase is Phase.DISABLE_PENDING
            and state.disable_event_id == decision
        )

    async def run(self) -> None:
        while True:
            config_id = await self.queue.get()
            self._queued.discard(config_id)
            try:
                await self._handle(config_id)
            finally:
                self.queue.task_done()

    async def _handle(self, config_id: str) -> None:
        state = self._state_of(config_id)
        if state is None or state.phase is not Phase.DISABLE_PENDING:
            return
        decision = state.disable_event_id
        bound = log.bind(
            integration_config_id=config_id,
            integration_run_id=state.last_run_id,
            bill_id=state.last_bill_id,
        )
        reason = disable_reason(state, self._s.error_threshold)
        if not await self._retry(
            bound, "disable", lambda: self._disabler.disable(config_id, reason)
        ):
            return  # not retryable: stays DISABLE_PENDING, tried again at the next start
        if not self._pending(config_id, decision):
            return  # re-enabled while we were calling
        config = self._config_of(config_id)
        event = IntegrationEvent(
            id=decision or f"evt_disabled_{config_id}",
            event_type=EventType.DISABLED,
            message=reason,
            integration_config_id=config_id,
            integration_run_id=state.last_run_id,
            entity_id=state.last_bill_id,
            destination=config.destination if config else None,
            dt_created=datetime.now(UTC),
        )
        await self._retry(
            bound,
            "publish_disabled_event",
            lambda: self._producer.send_and_wait(
                self._topic, event.to_bytes(), key=config_id.encode()
            ),
        )
        m.CONFIGS_DISABLED.inc()
        bound.warning(
            "configuration_disabled",
            successive_errors=state.successive_errors,
            last_error=redact(state.last_error),
        )
        if config is not None and config.disabled_notification_user_ids:
            notice = DisabledNotice(
                config_id, config.name, config.destination.value, state, self._s.error_threshold
            )
            await self._mailer.notify(notice, config.disabled_notification_user_ids)
        if not self._pending(config_id, decision):
            return  # re-enabled meanwhile: the reset state is already being written
        await self._retry(
            bound, "mark_disabled", lambda: self._mark_disabled(config_id, decision or "")
        )

    async def _retry(self, bound: Any, step: str, call: Callable[[], Awaitable[Any]]) -> bool:
        attempt = 0
        while True:
            attempt += 1
            try:
                await call()
                return True
            except DisableError as exc:
                m.DISABLE_FAILURES.inc()
                bound.error(
                    "disable_failed", attempt=attempt, error=str(exc), retryable=exc.retryable
                )
                if not exc.retryable:
                    return False
            except KafkaError as exc:
                bound.error("monitor_step_failed", step=step, attempt=attempt, error=repr(exc))
            await asyncio.sleep(self._policy.delay(min(attempt, 30)))
