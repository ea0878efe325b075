"""Fixtures for the fake Stripe tests: a fresh fake per test and clients bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import stripe

from fakes.stripe import FakeStripe

KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
LIVE_KEY = "sk_live_51Hx0000000000000000abcd"


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    # Rate limits off by default so tests can run fast; the rate-limit tests turn them on.
    fake = FakeStripe([KEY, LIVE_KEY], rate_limits={"enabled": False}, faults={"seed": 7})
    fake.seed_customer("cus_a", currency="usd", email="a@example.com", name="A Corp")
    fake.seed_customer("cus_b", currency="usd")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def client(fake: FakeStripe) -> AsyncIterator[stripe.StripeClient]:
    """The production client shape: official SDK, async aiohttp transport, no retries."""
    assert fake.url is not None
    http_client = stripe.AIOHTTPClient()
    yield stripe.StripeClient(
        KEY,
        base_addresses={"api": fake.url},
        http_client=http_client,
        max_network_retries=0,
    )
    await http_client.close_async()


@pytest.fixture
async def http(fake: FakeStripe) -> AsyncIterator[aiohttp.ClientSession]:
    """A raw HTTP session on the fake with the test key (for headers and faults)."""
    async with aiohttp.ClientSession(
        base_url=fake.url, headers={"Authorization": f"Bearer {KEY}"}
    ) as session:
        yield session
