"""The single writer of the `integration-configs` topic.

Every change (an operator's update, the monitor's auto-disable, a credential attached by
an OAuth callback) is a read-modify-write under one lock, checked against the current
version and written as version+1, so two writers never overwrite each other."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from services.control.errors import conflict, not_found
from shared.contracts import IntegrationConfig, IntegrationConfigAdapter
from shared.kafka.table import CompactedTable
from shared.logging import get_logger
from shared.settings import Settings
from shared.store import Store

log = get_logger(__name__)
WRITES = Counter(
    "billsync_control_config_writes_total", "Configuration writes by action", ["action"]
)
Mutation = Callable[[IntegrationConfig], IntegrationConfig | None]  # None: nothing to change


class ConfigWriter:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer, store: Store) -> None:
        self._producer = producer
        self._store = store
        self._lock = asyncio.Lock()
        self.table = CompactedTable[IntegrationConfig](
            settings.topics.name("integration_configs"),
            settings.kafka_bootstrap_servers,
            IntegrationConfigAdapter.validate_json,
        )

    async def start(self) -> None:
        await self.table.start()

    async def stop(self) -> None:
        await self.table.stop()

    def get(self, config_id: str) -> IntegrationConfig | None:
        return self.table.get(config_id)

    def require(self, config_id: str) -> IntegrationConfig:
        config = self.table.get(config_id)
        if config is None:
            raise not_found("integration configuration", config_id)
        return config

    def all(self) -> list[IntegrationConfig]:
        return sorted(self.table.values(), key=lambda c: c.id)

    async def create(self, config: IntegrationConfig, actor: str) -> IntegrationConfig:
        async with self._lock:
            if config.id in self.table.data:
                raise conflict(
                    f"integration configuration {config.id!r} already exists; "
                    "update it with PUT and its current version"
                )
            created = config.model_copy(update={"version": 1})
            await self._write(created, "create", actor, None)
            return created

    async def modify(
        self,
        config_id: str,
        mutate: Mutation,
        action: str,
        actor: str,
        expected_version: int | None = None,
        reason: str | None = None,
    ) -> tuple[IntegrationConfig, bool]:
        """Apply `mutate` to the current configuration; returns (config, changed)."""
        async with self._lock:
            current = self.require(config_id)
            _check_version(current, expected_version)
            changed = mutate(current)
            if changed is None:
                return current, False
            updated = changed.model_copy(update={"version": current.version + 1})
            await self._write(updated, action, actor, reason)
            return updated, True

    async def delete(
        self, config_id: str, actor: str, expected_version: int | None = None
    ) -> IntegrationConfig:
        async with self._lock:
            current = self.require(config_id)
            _check_version(current, expected_version)
            await self.table.write(self._producer, config_id, None, None)
            WRITES.labels("delete").inc()
            log.info("config_deleted", config_id=config_id, version=current.version, actor=actor)
            await self._audit(config_id, current.version, "delete", actor, None)
            return current

    async def _write(
        self, config: IntegrationConfig, action: str, actor: str, reason: str | None
    ) -> None:
        await self.table.write(self._producer, config.id, config, config.to_bytes())
        WRITES.labels(action).inc()
        log.info(
            "config_written",
            config_id=config.id,
            version=config.version,
            action=action,
            enabled=config.enabled,
            actor=actor,
            reason=reason,
        )
        await self._audit(config.id, config.version, action, actor, reason)

    async def _audit(
        self, config_id: str, version: int, action: str, actor: str, reason: str | None
    ) -> None:
        # The topic is the source of truth and already has the change: a failed audit
        # row is reported, not turned into a failed request.
        try:
            await self._store.record_config_change(config_id, version, action, actor, reason)
        except Exception:
            log.exception("config_audit_failed", config_id=config_id, version=version)


def _check_version(current: IntegrationConfig, expected: int | None) -> None:
    if expected is not None and expected != current.version:
        raise conflict(
            f"integration configuration {current.id!r} is at version {current.version}, "
            f"not {expected}: fetch it again, re-apply your change and send "
            f"version {current.version}"
        )
