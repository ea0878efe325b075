"""The monitor's durable state: one record per configuration on a compacted topic,
written (and acknowledged) before the input offsets that produced it are committed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

from services.monitor.state import ConfigErrorState
from shared.kafka.table import read_snapshot
from shared.settings import Settings


class StateStore:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.topic = settings.topics.name("monitor_state")
        self._producer = producer

    async def load(self) -> dict[str, ConfigErrorState]:
        return await read_snapshot(
            self.topic, self.settings.kafka_bootstrap_servers, ConfigErrorState.model_validate_json
        )

    async def write(self, states: Iterable[ConfigErrorState]) -> None:
        futures = [
            await self._producer.send(
                self.topic, s.to_bytes(), key=s.integration_config_id.encode()
            )
            for s in states
        ]
        if futures:
            await asyncio.gather(*futures)
