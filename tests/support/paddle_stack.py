"""An end-to-end Paddle stack for tests: the local Paddle, credentials, configurations,
external mappings, the router and the Paddle sink on the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fakes.paddle import FakePaddle
from services.paddle_sink.destination import PaddleDestination
from shared.contracts import ExternalMapping, IntegrationConfig, ResultRecordAdapter
from shared.contracts.runs import IntegrationEvent, IntegrationRun
from shared.credentials import CredentialAdapter, CredentialCipher, generate_key
from shared.credentials.store import publish_credential, seal
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from shared.sinks.options import SinkOptions
from shared.sinks.runner import SinkRunner, running_sink
from tests.support.kafka import publish, read_topic

FAST_RETRIES = SinkOptions(
    max_attempts=8, retry_base_delay=0.05, retry_max_delay=0.5, commit_interval=0.2
)


@dataclass
class PaddleStack:
    settings: Settings
    fake: FakePaddle
    url: str
    key: str
    options: SinkOptions = field(default_factory=lambda: FAST_RETRIES)

    async def credential(self, cred_id: str, api_key: str) -> None:
        cred = CredentialAdapter.validate_python(
            {"id": cred_id, "type": "PADDLE", "apiKey": api_key}
        )
        producer = make_producer(self.settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            await publish_credential(
                producer,
                self.settings.topics.name("credentials"),
                seal(cred, CredentialCipher(self.key)),
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

    def runner(self, **option_overrides: Any) -> SinkRunner:
        options = self.options.model_copy(update=option_overrides)
        destination = PaddleDestination(api_base=self.url)
        return SinkRunner(self.settings, destination, options, CredentialCipher(self.key))

    @contextlib.asynccontextmanager
    async def sink(self, **option_overrides: Any) -> AsyncIterator[SinkRunner]:
        async with running_sink(self.runner(**option_overrides)) as runner:
            yield runner

    async def results(self) -> tuple[dict[str, IntegrationRun], list[IntegrationEvent]]:
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

    def transactions_by_bill(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for txn in self.fake.transactions():
            out.setdefault(str((txn["custom_data"] or {}).get("billsync_bill_id")), []).append(txn)
        return out


def account_mappings(
    account_id: str, ids: dict[str, Any], parent: str | None = None
) -> list[ExternalMapping]:
    """Customer, Address (and Business) mappings of an account to the seeded Paddle ids."""
    rows = []
    for table, key in (
        ("Customer", "customer_id"),
        ("Address", "address_id"),
        ("Business", "business_id"),
    ):
        if ids.get(key):
            rows.append(
                ExternalMapping.model_validate(
                    {
                        "id": f"map-{account_id}-{table}",
                        "externalSystem": "Paddle",
                        "externalTable": table,
                        "externalId": ids[key],
                        "m3terEntity": "Account",
                        "m3terId": account_id,
                        "integrationConfigId": parent,
                    }
                )
            )
    return rows


@contextlib.asynccontextmanager
async def paddle_stack(
    settings: Settings, keys: tuple[str, ...] = ("pdl_sdbx_apikey_e2e",), **fake_config: Any
) -> AsyncIterator[PaddleStack]:
    key = generate_key()
    settings = settings.model_copy(update={"credentials_key": key})
    await ensure_topics(settings)
    fake = FakePaddle(keys, **fake_config)
    url = await fake.start()
    try:
        yield PaddleStack(settings, fake, url, key)
    finally:
        await fake.stop()
