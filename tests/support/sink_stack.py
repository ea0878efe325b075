"""What the end-to-end sink stacks for tests share (`StripeStack`, `PaddleStack` and the
Salesforce and Xero end-to-end tests' stacks): sealed credentials, configurations, external
mappings and dispatch envelopes published to the real broker, the sink run in-process, and
the results topic read back. Each stack adds its fake, its destination's runner and its own
inspection helpers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

from services.router.envelopes import EnvelopeBuilder
from shared.contracts import (
    Bill,
    ExternalMapping,
    IntegrationConfig,
    ResultRecordAdapter,
    Trigger,
)
from shared.contracts.runs import IntegrationEvent, IntegrationRun
from shared.credentials import Credential, CredentialAdapter, CredentialCipher
from shared.credentials.store import publish_credential, seal
from shared.kafka.producer import make_producer
from shared.settings import Settings
from shared.sinks.options import SinkOptions
from shared.sinks.runner import SinkRunner, running_sink
from tests.support.builders import account
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
        await self.publish_credentials(
            CredentialAdapter.validate_python(
                {"id": cred_id, "type": self.credential_type, "apiKey": api_key, **extra}
            )
        )

    async def publish_credentials(self, *credentials: Credential) -> None:
        """Seal each credential with the stack's key and publish it."""
        producer = make_producer(self.settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            for cred in credentials:
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

    async def mappings(self, *rows: ExternalMapping) -> None:
        await publish(
            self.settings.kafka_bootstrap_servers,
            self.settings.topics.name("external_mappings"),
            [(m.id.encode(), m.to_bytes()) for m in rows],
        )

    async def envelopes(self, cfg: IntegrationConfig, bills: list[Bill]) -> None:
        """The configuration's dispatch envelopes of `bills`, as the router would publish
        them (without a router)."""
        builder = EnvelopeBuilder()
        records: list[tuple[bytes | None, bytes | None]] = []
        for b in bills:
            owner = b.account or account(b.account_id)
            [(c, _, body)] = builder.build(b, owner, [cfg], Trigger.GENERATED, "test/0/0")
            records.append((c.id.encode(), body))
        await publish(
            self.settings.kafka_bootstrap_servers,
            self.settings.topics.dispatch(cfg.destination.family),
            records,
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

    async def runs_where(
        self, done: Callable[[dict[str, IntegrationRun]], bool], timeout: float = 60.0
    ) -> dict[str, IntegrationRun]:
        """The latest record of every run, once `done` holds for them."""
        deadline = time.monotonic() + timeout
        while True:
            runs, _ = await self.results()
            if done(runs):
                return runs
            if time.monotonic() > deadline:
                statuses = sorted(r.status.value for r in runs.values())
                raise AssertionError(f"not reached after {timeout}s: {statuses}")
            await asyncio.sleep(0.3)

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
