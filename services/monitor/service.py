"""The monitor's stream processor: a faust app whose agent reads `integration-results` and
keeps the per-configuration error state in a faust table (changelog: `monitor-state-changelog`,
co-partitioned with `integration-results`, which every producer keys by configuration id).

faust's at-least-once processing writes the changelog before it commits the input
offsets; a crash redelivers what came after the last commit. The state therefore records,
per input partition, the highest offset it applied: a redelivered record is skipped however
many there are, and a record published twice is recognised by its id (`recent_ids`).

Changes that do not come from a result (a re-enabled configuration resets the count; the
threshold actions finished) are commands on `monitor-commands`, keyed and partitioned like
the results, so the agent stays the one writer of the table."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from services.monitor import metrics as m
from services.monitor.actions import DisableActions
from services.monitor.counting import (
    Outcome,
    apply_disabled,
    apply_record,
    apply_reset,
    should_reset,
)
from services.monitor.disabler import ConfigDisabler, HttpConfigDisabler
from services.monitor.mailer import Mailer
from services.monitor.notify_webhook import ProviderErrorOutbox, provider_error_event
from services.monitor.settings import MonitorSettings
from services.monitor.state import ConfigErrorState, Phase
from services.monitor.users import UsersDirectory
from shared.contracts import (
    IntegrationConfig,
    IntegrationEvent,
    IntegrationRun,
    ResultRecordAdapter,
    parse_config,
)
from shared.contracts.base import WireModel
from shared.kafka.producer import make_producer
from shared.kafka.table import CompactedTable
from shared.kafka.topics import TopicSpec, ensure_topics
from shared.lifecycle import cancel_and_wait
from shared.logging import get_logger
from shared.observability import ObservabilityServer
from shared.settings import Settings
from shared.sinks.backoff import RetryPolicy

log = get_logger("monitor")
_WRITE_RETRY = RetryPolicy(max_attempts=1_000_000, base_delay=0.2, max_delay=10.0)

for _noisy in ("faust", "mode"):  # their INFO lines narrate every rebalance step
    logging.getLogger(_noisy).setLevel(logging.WARNING)


class Command(WireModel):
    """A state change that is not a result: `reset` (re-enabled at `config_version`) or
    `disabled` (the actions of decision `disable_event_id` are done)."""

    kind: Literal["reset", "disabled"]
    integration_config_id: str
    config_version: int = 0
    disable_event_id: str | None = None


class StatesView(Mapping[str, ConfigErrorState]):
    """Read-only, decoded view of the faust table (key: configuration id)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def __getitem__(self, key: str) -> ConfigErrorState:
        raw = self._table.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return ConfigErrorState.model_validate_json(raw)

    def __iter__(self) -> Iterator[str]:
        return (k.decode() for k in list(self._table.keys()))

    def __len__(self) -> int:
        return len(self._table)


async def partitions_of(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        for _ in range(50):
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                return len(partitions)
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {topic!r} does not exist; run `billsync topics create`")
    finally:
        await consumer.stop()


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
        prefix = settings.topics.prefix
        self.results_topic = settings.topics.name("integration_results")
        self.changelog_topic = f"{prefix}{self.m.state_topic}"
        self.commands_topic = f"{prefix}{self.m.commands_topic}"
        self.group_id = f"{settings.consumer_group_prefix}-monitor"
        # The table's changelog, the outbox and the disabled events; each write is awaited.
        self.producer = make_producer(bootstrap, linger_ms=0)
        self._previous: dict[str, IntegrationConfig] = {}
        self.configs = CompactedTable[IntegrationConfig](
            settings.topics.name("integration_configs"),
            bootstrap,
            parse_config,
            self._config_changed,
        )
        token = self.m.admin_token.get_secret_value() if self.m.admin_token else None
        self.disabler = disabler or HttpConfigDisabler(
            self.m.control_url, token, self.m.control_timeout
        )
        self.mailer = Mailer(self.m, UsersDirectory(self.m.users_file))
        self.notifier = ProviderErrorOutbox(settings, self.m)
        self.http = ObservabilityServer("monitor", self._health)
        # Built in start(): the table's partition count is the results topic's.
        self.app: Any = None
        self._table: Any = None
        self._commands: Any = None
        self.states: Mapping[str, ConfigErrorState] = {}
        self.actions: DisableActions | None = None
        self._recovered = asyncio.Event()
        self._configs_ready = asyncio.Event()
        self._pending_commands: asyncio.Queue[Command] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._stopping = asyncio.Event()

    # ---- lifecycle ------------------------------------------------------------------

    def _build_app(self, partitions: int) -> None:
        bootstrap = self.settings.kafka_bootstrap_servers
        app = faust.App(
            self.group_id,  # the consumer group
            broker=[f"kafka://{h.strip()}" for h in bootstrap.split(",")],
            store="memory://",
            topic_partitions=partitions,
            topic_disable_leader=True,
            web_enabled=False,
            autodiscover=False,
            key_serializer="raw",
            value_serializer="raw",
            processing_guarantee="at_least_once",
            table_standby_replicas=0,  # standby copies would resume other owners' actions
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            # faust's default (60 s) keeps a killed member in the group for a minute.
            broker_session_timeout=10.0,
            broker_heartbeat_interval=3.0,
        )
        changelog = app.topic(
            self.changelog_topic, partitions=partitions, compacting=True, deleting=False
        )
        self._table = app.Table(
            "state",
            default=None,
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
            changelog_topic=changelog,
        )
        self._table.on_recover(self._on_recovered)
        self._commands = app.topic(self.commands_topic, partitions=partitions)
        source = app.topic(self.results_topic, self.commands_topic, partitions=partitions)
        app.agent(source, name="monitor-count")(self._count)
        self.app = app
        self.states = StatesView(self._table)

    async def start(self) -> None:
        await ensure_topics(self.settings)
        bootstrap = self.settings.kafka_bootstrap_servers
        partitions = await partitions_of(bootstrap, self.results_topic)
        await ensure_topics(
            self.settings,
            [
                TopicSpec(self.changelog_topic, partitions, compacted=True),
                TopicSpec(self.commands_topic, partitions),
                TopicSpec(self.notifier.topic, 1),
            ],
        )
        self._build_app(partitions)
        self.actions = DisableActions(
            self.m,
            self.results_topic,
            self.producer,
            self.disabler,
            self.mailer,
            self._state_of,
            self.configs.get,
            self._mark_disabled,
        )
        await self.producer.start()
        await self.app.start()
        await asyncio.wait_for(self._recovered.wait(), 120)
        await self.configs.start()  # replays the configurations on the recovered state
        self._configs_ready.set()
        await self.notifier.start()
        port = await self.http.start(self.settings.http_host, self.settings.http_port)
        self._tasks += [
            asyncio.create_task(self.actions.run(), name="monitor-actions"),
            asyncio.create_task(self._send_commands(), name="monitor-commands"),
        ]
        self._started = True
        log.info(
            "monitor_started",
            http_port=port,
            configurations=len(self.configs.data),
            tracked=len(self.states),
            threshold=self.m.error_threshold,
            partitions=partitions,
        )

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        await self.http.stop()
        await self.notifier.stop()
        if self.app is not None:
            await self.app.stop()
        await self.configs.stop()
        await self.producer.stop()
        log.info("monitor_stopped")

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Until `request_stop`: the faust agent does the work; a crashed app ends this."""
        while not self._stopping.is_set():
            if self.app.should_stop:
                raise RuntimeError(f"the monitor's stream processor stopped: {self.app}")
            try:
                await asyncio.wait_for(self._stopping.wait(), 0.5)
            except TimeoutError:
                continue

    def _health(self) -> dict[str, Any]:
        return {
            "ok": self._started and self.configs.ready.is_set() and self._recovered.is_set(),
            "configurations": len(self.configs.data),
            "tracked": len(self.states),
            "pendingDisables": self.actions.queue.qsize() if self.actions else 0,
        }

    # ---- the table ------------------------------------------------------------------

    def _state_of(self, config_id: str) -> ConfigErrorState | None:
        return self.states.get(config_id)

    async def _save(self, state: ConfigErrorState, partition: int) -> None:
        """The changelog record is acknowledged before the agent takes the next record, so
        faust can only commit input whose effect is durable. (faust's own table write is
        buffered, and its flush before a commit gives up on a 0.1 s timeout: a kill -9 then
        lost counts; see docs/monitor.md.) The key's partition is the input's."""
        key, value = state.integration_config_id.encode(), state.to_bytes()
        await self._write(self.changelog_topic, value, key, partition)
        self._table.data[key] = value  # the local copy; the changelog is already written
        m.SUCCESSIVE_ERRORS.labels(state.integration_config_id).set(state.successive_errors)

    async def _on_recovered(self) -> None:
        assert self.actions is not None
        for state in self.states.values():
            m.SUCCESSIVE_ERRORS.labels(state.integration_config_id).set(state.successive_errors)
            if state.phase is Phase.DISABLE_PENDING:
                self.actions.submit(state.integration_config_id)
        self._recovered.set()

    # ---- commands -------------------------------------------------------------------

    def _config_changed(self, key: str, config: IntegrationConfig | None) -> None:
        previous = self._previous.pop(key, None)
        if config is None:
            return
        self._previous[key] = config
        state = self.states.get(key)
        if state is not None and should_reset(state, config, previous):
            self._pending_commands.put_nowait(
                Command(kind="reset", integration_config_id=key, config_version=config.version)
            )

    async def _mark_disabled(self, config_id: str, disable_event_id: str) -> None:
        await self._send_command(
            Command(
                kind="disabled", integration_config_id=config_id, disable_event_id=disable_event_id
            )
        )

    async def _send_command(self, command: Command) -> None:
        future = await self._commands.send(
            key=command.integration_config_id.encode(), value=command.to_bytes()
        )
        await future

    async def _send_commands(self) -> None:
        # A command lost to a crash is re-derived: the configurations are replayed at start.
        while True:
            command = await self._pending_commands.get()
            await self._send_command(command)

    # ---- the agent ------------------------------------------------------------------

    async def _count(self, stream: Any) -> None:
        await self._configs_ready.wait()
        async for event in stream.events():
            message = event.message
            try:
                await self._handle(message.topic, message.partition, message.offset, event.value)
            except Exception:  # a bug in one record must not stop the monitor: skip it, loudly
                m.RESULTS_CONSUMED.labels("failed").inc()
                log.exception(
                    "result_failed",
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                )

    async def _write(self, topic: str, value: bytes, key: bytes, partition: int | None) -> None:
        """Acknowledged, or retried until it is: the input offset must not move past it."""
        attempt = 0
        while True:
            try:
                await self.producer.send_and_wait(topic, value, key=key, partition=partition)
                return
            except KafkaError as exc:
                attempt += 1
                log.error("monitor_write_failed", topic=topic, attempt=attempt, error=repr(exc))
                await asyncio.sleep(_WRITE_RETRY.delay(min(attempt, 30)))

    async def _handle(self, topic: str, partition: int, offset: int, value: bytes | None) -> None:
        if topic == self.commands_topic:
            await self._apply_command(partition, offset, value or b"")
            return
        try:
            result = ResultRecordAdapter.validate_json(value or b"")
        except ValueError as exc:
            m.RESULTS_CONSUMED.labels("malformed").inc()
            log.warning(
                "result_unreadable",
                topic=topic,
                partition=partition,
                offset=offset,
                error=str(exc)[:300],
            )
            return
        m.RESULTS_CONSUMED.labels(result.record_type).inc()
        if not isinstance(result, IntegrationEvent | IntegrationRun):
            return
        position = f"{topic}/{partition}"
        config_id = result.integration_config_id
        state = self.states.get(config_id) or ConfigErrorState(integration_config_id=config_id)
        if state.applied_offsets.get(position, -1) >= offset:
            return  # redelivered after a crash: already in the table
        if isinstance(result, IntegrationRun) and self.notifier.wants(result):
            # Acknowledged before this input offset can be committed.
            body = json.dumps(provider_error_event(result), separators=(",", ":")).encode()
            await self._write(self.notifier.topic, body, result.id.encode(), None)
            m.WEBHOOKS.labels("queued").inc()
        outcome = apply_record(
            state,
            result,
            self.configs.get(config_id),
            self.m.error_threshold,
            self.m.remembered_ids,
        )
        if outcome is Outcome.UNCHANGED:
            return
        state.applied_offsets[position] = offset
        await self._save(state, partition)
        if outcome is Outcome.DISABLE:
            log.warning(
                "error_threshold_reached",
                integration_config_id=config_id,
                successive_errors=state.successive_errors,
                integration_run_id=result.integration_run_id
                if isinstance(result, IntegrationEvent)
                else result.id,
            )
            assert self.actions is not None
            self.actions.submit(config_id)

    async def _apply_command(self, partition: int, offset: int, value: bytes) -> None:
        position = f"{self.commands_topic}/{partition}"
        try:
            command = Command.model_validate_json(value)
        except ValueError as exc:
            log.warning("monitor_command_unreadable", offset=offset, error=str(exc)[:300])
            return
        state = self.states.get(command.integration_config_id)
        if state is None or state.applied_offsets.get(position, -1) >= offset:
            return
        if command.kind == "reset":
            changed = apply_reset(state, command.config_version)
            if changed:
                log.info(
                    "error_count_reset",
                    integration_config_id=state.integration_config_id,
                    version=command.config_version,
                )
        else:
            changed = apply_disabled(state, command.disable_event_id or "")
        if changed:
            state.applied_offsets[position] = offset
            state.updated_at = datetime.now(UTC)
            await self._save(state, partition)
