"""What the end-to-end sink stacks for tests share (`StripeStack`, `PaddleStack`): sealed
credentials and configurations published to the real broker, the sink run in-process, and
the results topic read back. Each stack adds its fake, its destination's runner and its own
inspection helpers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from shared.contracts import IntegrationConfig, ResultRecordAdapter
from shared.contracts.runs import IntegrationEvent, IntegrationRun
from shared.credentials import CredentialAdapter, CredentialCipher
from shared.credentials.store import publish_credential, seal
from shared.kafka.producer import make_producer
from shared.settings import Settings
from shared.sinks.options import SinkOptions
from shared.sinks.runner import SinkRunner, running_sink
from tests.support.kafka import publish, read_topic

FAST_RETRIES = SinkOptions(
    max_attempts=8, retry_base_delay=0.05, retry_max_delay=0.5, commit_interval=0.2
)


class SinkStack:
    """Base of a stack dataclass with these fields; subclasses give `credential_type` and
    `runner`."""

    settings: Settings
    url: str  # the fake's base URL
    key: str  # the credentials key
    options: SinkOptions
    credential_type: ClassVar[str]

    @property
    def cipher(self) -> CredentialCipher:
        return CredentialCipher(self.key)

    async def credential(self, cred_id: str, api_key: str, **extra: Any) -> None:
        cred = CredentialAdapter.validate_python(
            {"id": cred_id, "type": self.credential_type, "apiKey": api_key, **extra}
        )
        producer = make_producer(self.settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            await publish_credential(
                producer, self.settings.topics.name("credentials"), seal(cred, self.cipher)
            )
        finally:
            await producer.stop()

    async def configs(self, *configs: IntegrationConfig) -> None:
        await publish(
            self.settings.kafka_bootstrap_servers,
            self.settings.topics.name("integration_configs"),
            [(c.id.encode(), c.to_bytes()) for c in configs],
        )

    def runner(self, **option_overrides: Any) -> SinkRunner:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def sink(self, **option_overrides: Any) -> AsyncIterator[SinkRunner]:
        async with running_sink(self.runner(**option_overrides)) as runner:
            yield runner

    async def results(self) -> tuple[dict[str, IntegrationRun], list[IntegrationEvent]]:
        """The latest record of every run (by run id), and every event."""
        runs: dict[str, IntegrationRun] = {}
        events: list[IntegrationEvent] = []
        for rec in await read_topic(
            self.settings.kafka_bootstrap_servers, self.settings.topics.name("integration_results")
        ):
            item = ResultRecordAdapter.validate_json(rec.value or b"")
            if isinstance(item, IntegrationRun):
                runs[item.id] = item
            elif isinstance(item, IntegrationEvent):
                events.append(item)
        return runs, events

    async def wait_final_runs(self, count: int, timeout: float = 60) -> dict[str, IntegrationRun]:
        deadline = time.monotonic() + timeout
        final: dict[str, IntegrationRun] = {}
        while time.monotonic() < deadline:
            runs, _ = await self.results()
            final = {k: r for k, r in runs.items() if r.status.is_final}
            if len(final) >= count:
                return final
            await asyncio.sleep(0.3)
        statuses = sorted(r.status.value for r in final.values())
        raise AssertionError(f"{len(final)} of {count} runs final after {timeout}s: {statuses}")
