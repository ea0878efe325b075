"""The monitor's durable state: one record per configuration on a compacted topic,
written (and acknowledged) before the input offsets that produced it are committed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

from services.monitor.state import ConfigErrorState
from shared.kafka.table import read_snapshot
from shared.kafka.topics import TopicSpec, ensure_topics
from shared.settings import Settings


class StateStore:
    def __init__(self, settings: Settings, topic: str, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.topic = f"{settings.topics.prefix}{topic}"
        self._producer = producer

    async def ensure_topic(self) -> None:
        await ensure_topics(self.settings, [TopicSpec(self.topic, 1, compacted=True)])

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
