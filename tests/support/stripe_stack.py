"""An end-to-end Stripe stack for tests: fake Stripe, credentials, configs, router, sink."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fakes.stripe import FakeStripe
from services.stripe_sink.destination import StripeDestination
from shared.contracts import IntegrationConfig, ResultRecordAdapter
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
class StripeStack:
    settings: Settings
    fake: FakeStripe
    url: str
    key: str
    options: SinkOptions = field(default_factory=lambda: FAST_RETRIES)

    @property
    def cipher(self) -> CredentialCipher:
        return CredentialCipher(self.key)

    async def credential(self, cred_id: str, api_key: str, **extra: Any) -> None:
        cred = CredentialAdapter.validate_python(
            {"id": cred_id, "type": "STRIPE", "apiKey": api_key, **extra}
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
        options = self.options.model_copy(update=option_overrides)
        return SinkRunner(self.settings, StripeDestination(api_base=self.url), options, self.cipher)

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

    def invoices_by_bill(
        self, livemode: bool = False, account: str | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for inv in self.fake.invoices(account, livemode=livemode):
            bill_id = (inv.get("metadata") or {}).get("billsync_bill_id")
            out.setdefault(str(bill_id), []).append(inv)
        return out


@contextlib.asynccontextmanager
async def stripe_stack(
    settings: Settings,
    keys: tuple[str, ...] = ("sk_test_e2e",),
    customers: int = 10,
    **fake_config: Any,
) -> AsyncIterator[StripeStack]:
    key = generate_key()
    settings = settings.model_copy(update={"credentials_key": key})
    await ensure_topics(settings)
    fake = FakeStripe(api_keys=keys, **fake_config)
    url = await fake.start()
    for i in range(1, customers + 1):
        fake.seed_customer(f"acc-{i}", currency="usd")
    try:
        yield StripeStack(settings, fake, url, key)
    finally:
        await fake.stop()


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)
