"""The batch-path standard suite, through the runner on the real broker, for the minimal
batching destination against the generic batching fake (fakes/batching)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fakes.batching import FakeBatching
from shared.sinks.standard_batch_tests import BatchHarness, BatchStandardTests
from tests.support.batching import FakeBatchingHarness

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
async def fake_batching() -> AsyncIterator[FakeBatching]:
    fake = FakeBatching(window_calls=1000, window_seconds=60, concurrent=5, daily=100000)
    await fake.start()
    yield fake
    await fake.stop()


class TestBatchingStandard(BatchStandardTests):
    @pytest.fixture
    def harness(self, fake_batching: FakeBatching) -> BatchHarness:
        fake_batching.reset()
        return FakeBatchingHarness(fake_batching)
