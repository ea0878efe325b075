"""An end-to-end Stripe stack for tests: fake Stripe, credentials, configs, router, sink."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fakes.stripe import FakeStripe
from services.stripe_sink.destination import StripeDestination
from shared.credentials import generate_key
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from shared.sinks.options import SinkOptions
from shared.sinks.runner import SinkRunner
from tests.support.sink_stack import FAST_RETRIES, SinkStack


@dataclass
class StripeStack(SinkStack):
    settings: Settings
    fake: FakeStripe
    url: str
    key: str
    options: SinkOptions = field(default_factory=lambda: FAST_RETRIES)
    credential_type: ClassVar[str] = "STRIPE"

    def runner(self, **option_overrides: Any) -> SinkRunner:
        options = self.options.model_copy(update=option_overrides)
        return SinkRunner(self.settings, StripeDestination(api_base=self.url), options, self.cipher)

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
