"""An end-to-end Paddle stack for tests: the local Paddle, credentials, configurations,
external mappings, the router and the Paddle sink on the real broker."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fakes.paddle import FakePaddle
from services.paddle_sink.destination import PaddleDestination
from shared.contracts import ExternalMapping
from shared.credentials import generate_key
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from shared.sinks.options import SinkOptions
from shared.sinks.runner import SinkRunner
from tests.support.sink_stack import FAST_RETRIES, SinkStack


@dataclass
class PaddleStack(SinkStack):
    settings: Settings
    fake: FakePaddle
    url: str
    key: str
    options: SinkOptions = field(default_factory=lambda: FAST_RETRIES)
    credential_type: ClassVar[str] = "PADDLE"

    def runner(self, **option_overrides: Any) -> SinkRunner:
        options = self.options.model_copy(update=option_overrides)
        destination = PaddleDestination(api_base=self.url)
        return SinkRunner(self.settings, destination, options, self.cipher)

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
