"""The monitor's Kafka edge: follow configurations, consume integration-results, count,
write the state and the provider-error outbox, then commit (at-least-once; counting is
idempotent: per input partition by offset, and per record id for records published twice)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from services.monitor import metrics as m
from services.monitor.actions import DisableActions
from services.monitor.counting import Outcome, apply_config, apply_disabled, apply_record
from services.monitor.disabler import ConfigDisabler, HttpConfigDisabler
from services.monitor.mailer import Mailer
from services.monitor.notify_webhook import ProviderErrorOutbox, provider_error_event
from services.monitor.settings import MonitorSettings
from services.monitor.state import ConfigErrorState, Phase
from services.monitor.store import StateStore
from services.monitor.users import UsersDirectory
from shared.contracts import (
    IntegrationConfig,
    IntegrationEvent,
    IntegrationRun,
    ResultRecordAdapter,
    parse_config,
)
from shared.kafka.client_options import kafka_options
from shared.kafka.lag import LagWatcher
from shared.kafka.producer import make_producer
from shared.kafka.table import CompactedTable
from shared.kafka.topics import ensure_topics
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger
from shared.observability import ObservabilityServer
from shared.settings import Settings

log = get_logger("monitor")

MAX_BATCH = 100


class MonitorService:
    def __init__(
        self,
        settings: Settings,
        monitor: MonitorSettings | None = None,
        disabler: ConfigDisabler | None = None,
    ) -> None:
        self.settings = settings
        self.m = monitor or MonitorSettings()
        bootstrap = settings.kafka_bootstrap_servers
        self.results_topic = settings.topics.name("integration_results")
        self.producer = make_producer(bootstrap)
        self.store = StateStore(settings, self.producer)
        self.states: dict[str, ConfigErrorState] = {}
        self._dirty: set[str] = set()
        self._previous: dict[str, IntegrationConfig] = {}
        self.configs = CompactedTable[IntegrationConfig](
            settings.topics.name("integration_configs"),
            bootstrap,
            parse_config,
            self._config_changed,
        )
        self.consumer = AIOKafkaConsumer(
            self.results_topic,
            **kafka_options(bootstrap),
            group_id=f"{settings.consumer_group_prefix}-monitor",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.lag = LagWatcher(self.consumer, f"{settings.consumer_group_prefix}-monitor")
        token = self.m.admin_token.get_secret_value() if self.m.admin_token else None
        self.disabler = disabler or HttpConfigDisabler(
            self.m.control_url, token, self.m.control_timeout
        )
        self.mailer = Mailer(self.m, UsersDirectory(self.m.users_file))
        self.notifier = ProviderErrorOutbox(settings, self.m)
        self._outbox: list[tuple[bytes, bytes]] = []  # this batch's provider-error events
        self.actions = DisableActions(
            self.m,
            self.results_topic,
            self.producer,
            self.disabler,
            self.mailer,
            self.states.get,
            self.configs.get,
            self._mark_disabled,
        )
        self.http = ObservabilityServer("monitor", self._health)
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._stopping = asyncio.Event()

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await ensure_topics(self.settings)
        await self.producer.start()
        self.states.update(await self.store.load())
        m.ERROR_THRESHOLD.set(self.m.error_threshold)
        for state in self.states.values():
            m.SUCCESSIVE_ERRORS.labels(state.integration_config_id).set(state.successive_errors)
        await self.configs.start()
        await self.consumer.start()
        self.lag.start()
        await self.notifier.start()
        port = await self.http.start(self.settings.http_host, self.settings.http_port)
        self._tasks.append(asyncio.create_task(self.actions.run(), name="monitor-actions"))
        for state in self.states.values():
            if state.phase is Phase.DISABLE_PENDING:
                self.actions.submit(state.integration_config_id)
        self._started = True
        log.info(
            "monitor_started",
            http_port=port,
            configurations=len(self.configs.data),
            tracked=len(self.states),
            threshold=self.m.error_threshold,
        )

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        await self.http.stop()
        await self.notifier.stop()
        await self.lag.stop()
        await self.consumer.stop()
        await self.configs.stop()
        await self.producer.stop()
        log.info("monitor_stopped")

    def _health(self) -> dict[str, Any]:
        return {
            "ok": self._started and self.configs.ready.is_set(),
            "configurations": len(self.configs.data),
            "tracked": len(self.states),
            "pendingDisables": self.actions.queue.qsize(),
        }

    def _state(self, config_id: str) -> ConfigErrorState:
        state = self.states.get(config_id)
        if state is None:
            state = self.states[config_id] = ConfigErrorState(integration_config_id=config_id)
        return state

    def _config_changed(self, key: str, config: IntegrationConfig | None) -> None:
        previous = self._previous.pop(key, None)
        m.show_enabled(key, config.enabled if config else None)
        if config is None:
            return
        self._previous[key] = config
        if key in self.states and apply_config(self.states[key], config, previous):
            self._dirty.add(key)
            m.SUCCESSIVE_ERRORS.labels(key).set(0)
            log.info("error_count_reset", integration_config_id=key, version=config.version)

    # ---- the loop -----------------------------------------------------------------

    def request_stop(self) -> None:
        """Graceful: the batch in hand is written and committed before `run` returns."""
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            batches = await self.consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
            if batches:
                await self.process_batch(batches)
            elif self._dirty:
                await self._flush()
        if self._dirty:
            await self._flush()

    async def _flush(self) -> None:
        """The states the batch changed and its outbox events, acknowledged."""
        dirty, self._dirty = self._dirty, set()
        outbox, self._outbox = self._outbox, []
        futures = [
            await self.producer.send(self.notifier.topic, body, key=key) for key, body in outbox
        ]
        await self.store.write(self.states[c] for c in sorted(dirty))
        if futures:
            await asyncio.gather(*futures)
            m.WEBHOOKS.labels("queued").inc(len(futures))

    async def _mark_disabled(self, config_id: str, disable_event_id: str) -> None:
        state = self.states.get(config_id)
        if state is not None and apply_disabled(state, disable_event_id):
            await self.store.write([state])

    async def process_batch(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        to_disable: list[str] = []
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batches.items():
            for record in records:
                try:
                    outcome, config_id = self._handle(record)
                except Exception:  # a bug in one record must not stop the monitor: skip it
                    m.RESULTS_CONSUMED.labels("failed").inc()
                    log.exception(
                        "result_failed",
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                    )
                    continue
                if outcome is not Outcome.UNCHANGED and config_id:
                    self._dirty.add(config_id)
                    m.SUCCESSIVE_ERRORS.labels(config_id).set(
                        self.states[config_id].successive_errors
                    )
                if outcome is Outcome.DISABLE and config_id:
                    to_disable.append(config_id)
            offsets[tp] = records[-1].offset + 1
        await self._flush()  # durable before the offsets move
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError:
            log.warning("commit_failed_after_rebalance", partitions=len(offsets))
        for config_id in to_disable:
            self.actions.submit(config_id)

    def _handle(self, record: ConsumerRecord[bytes, bytes]) -> tuple[Outcome, str | None]:
        try:
            result = ResultRecordAdapter.validate_json(record.value or b"")
        except ValueError as exc:
            m.RESULTS_CONSUMED.labels("malformed").inc()
            log.warning(
                "result_unreadable",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                error=str(exc)[:300],
            )
            return Outcome.UNCHANGED, None
        m.RESULTS_CONSUMED.labels(result.record_type).inc()
        if not isinstance(result, IntegrationEvent | IntegrationRun):
            return Outcome.UNCHANGED, None
        config_id = result.integration_config_id
        state = self._state(config_id)
        position = f"{record.topic}/{record.partition}"
        if state.applied_offsets.get(position, -1) >= record.offset:
            return Outcome.UNCHANGED, None  # redelivered after a crash: already applied
        if isinstance(result, IntegrationRun) and self.notifier.wants(result):
            body = json.dumps(provider_error_event(result), separators=(",", ":")).encode()
            self._outbox.append((result.id.encode(), body))
        outcome = apply_record(
            state,
            result,
            self.configs.get(config_id),
            self.m.error_threshold,
            self.m.remembered_ids,
        )
        if outcome is not Outcome.UNCHANGED:
            state.applied_offsets[position] = record.offset
        if outcome is Outcome.DISABLE:
            log.warning(
                "error_threshold_reached",
                integration_config_id=config_id,
                successive_errors=self.states[config_id].successive_errors,
                integration_run_id=result.integration_run_id
                if isinstance(result, IntegrationEvent)
                else result.id,
            )
        return outcome, config_id
