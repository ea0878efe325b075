"""Token refresh end to end: authlib against the batching fake's rotating token endpoint,
the new tokens saved through the real control plane (single writer, version check) onto
the credentials topic before use; a crash before the save loses nothing; two instances
refreshing at once save once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from pydantic import SecretStr

from fakes.batching import FakeBatching
from shared.credentials import CredentialCipher, XeroCredential
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from shared.sinks.errors import RetriableError
from shared.sinks.leases import KafkaLeases, LeaseRecord
from shared.sinks.token_refresh import (
    AuthlibExchange,
    ControlPlaneCredentials,
    ControlPlaneLink,
    TokenRefresher,
)
from tests.support.control import ControlPlaneHandle, running_control_plane

pytestmark = pytest.mark.kafka


@pytest.fixture
async def fake() -> AsyncIterator[FakeBatching]:
    fake = FakeBatching()
    await fake.start()
    yield fake
    await fake.stop()


async def create_credential(cp: ControlPlaneHandle, refresh_token: str) -> XeroCredential:
    body = {
        "type": "XERO",
        "id": "cred-rot",
        "clientId": "client-1",
        "clientSecret": "secret-1",
        "tenantId": "tenant-1",
        "accessToken": "at-expired",
        "refreshToken": refresh_token,
        "accessTokenExpiresAt": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{cp.base_url}/integrationcredentials", json=body, headers=cp.admin_headers
        ) as resp:
            assert resp.status == 201, await resp.text()
    return XeroCredential(
        id="cred-rot",
        client_id="client-1",
        client_secret=SecretStr("secret-1"),
        tenant_id="tenant-1",
        access_token=SecretStr("at-expired"),
        refresh_token=SecretStr(refresh_token),
        access_token_expires_at=datetime.now(UTC) - timedelta(minutes=5),
    )


def source(
    settings: Settings, cp: ControlPlaneHandle, url: str | None = None
) -> ControlPlaneCredentials:
    return ControlPlaneCredentials(
        settings.topics.name("credentials"),
        settings.kafka_bootstrap_servers,
        CredentialCipher(SecretStr(cp.credentials_key)),
        ControlPlaneLink(control_url=url or cp.base_url, control_token=SecretStr(cp.admin_token)),
    )


async def works(fake: FakeBatching, access_token: str) -> bool:
    headers = {"Authorization": f"Bearer {access_token}", "Tenant-Id": "tenant-1"}
    item = {"reference": "r", "customer": "c", "currency": "USD", "total": "1"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{fake.url}/v1/invoices/batch", json={"invoices": [item]}, headers=headers
        ) as resp:
            return resp.status == 200


async def test_refresh_is_saved_through_the_control_plane_before_use(
    settings: Settings, fake: FakeBatching
) -> None:
    async with running_control_plane(settings) as cp:
        credential = await create_credential(cp, fake.issue_refresh_token())
        store = source(settings, cp)
        refresher = TokenRefresher(store, AuthlibExchange(f"{fake.url}/oauth/token"))
        token = await refresher.access_token(credential)
        stored = await store.latest("cred-rot")
        assert isinstance(stored, XeroCredential) and stored.access_token
        assert stored.access_token.get_secret_value() == token
        assert stored.version == 2 and stored.refresh_token
        assert (
            stored.refresh_token.get_secret_value() != credential.refresh_token.get_secret_value()
        )  # type: ignore[union-attr]
        assert await works(fake, token)
        # Fresh now: a second call exchanges nothing.
        assert await refresher.access_token(stored) == token
        assert fake.stats["refreshes"] == 1


async def test_a_crash_between_refresh_and_save_keeps_access(
    settings: Settings, fake: FakeBatching
) -> None:
    async with running_control_plane(settings) as cp:
        credential = await create_credential(cp, fake.issue_refresh_token())
        exchange = AuthlibExchange(f"{fake.url}/oauth/token")
        unreachable = source(settings, cp, url="http://127.0.0.1:9")  # the save never lands
        with pytest.raises(RetriableError):
            await TokenRefresher(unreachable, exchange).access_token(credential)
        assert fake.stats["refreshes"] == 1
        # "After the restart": the stored refresh token is the old one, still in its grace.
        store = source(settings, cp)
        token = await TokenRefresher(store, exchange).access_token(credential)
        assert await works(fake, token)
        stored = await store.latest("cred-rot")
        assert stored is not None and stored.version == 2


async def test_two_instances_refreshing_at_once_refresh_once(
    settings: Settings, fake: FakeBatching
) -> None:
    async with running_control_plane(settings) as cp, contextlib.AsyncExitStack() as stack:
        credential = await create_credential(cp, fake.issue_refresh_token())
        exchange = AuthlibExchange(f"{fake.url}/oauth/token")
        refreshers = []
        for _ in range(2):  # two instances: each its own producer and view of the leases
            producer = make_producer(settings.kafka_bootstrap_servers)
            await producer.start()
            stack.push_async_callback(producer.stop)
            leases = KafkaLeases(
                settings.topics.name("sink_leases"), settings.kafka_bootstrap_servers, producer
            )
            await leases.start()
            stack.push_async_callback(leases.stop)
            refreshers.append(TokenRefresher(source(settings, cp), exchange, lease=leases))
        a, b = refreshers
        tokens = await asyncio.gather(a.access_token(credential), b.access_token(credential))
        assert fake.stats["refreshes"] == 1  # the second instance waited, re-read, used it
        stored = await source(settings, cp).latest("cred-rot")
        assert stored is not None and stored.version == 2  # one save won
        assert isinstance(stored, XeroCredential) and stored.access_token
        assert set(tokens) == {stored.access_token.get_secret_value()}
        assert await works(fake, tokens[0])


async def test_a_lease_is_held_by_one_instance_at_a_time_and_expires_after_a_crash(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    topic = settings.topics.name("sink_leases")
    async with contextlib.AsyncExitStack() as stack:
        instances = []
        for ttl in (60.0, 60.0, 1.0):
            producer = make_producer(settings.kafka_bootstrap_servers)
            await producer.start()
            stack.push_async_callback(producer.stop)
            leases = KafkaLeases(topic, settings.kafka_bootstrap_servers, producer, ttl=ttl)
            await leases.start()
            stack.push_async_callback(leases.stop)
            instances.append(leases)
        inside: list[int] = []
        overlaps = 0

        async def critical(i: int) -> None:
            nonlocal overlaps
            async with instances[i].hold("refresh:cred-x"):
                overlaps += len(inside)
                inside.append(i)
                await asyncio.sleep(0.1)  # work inside the lease
                inside.remove(i)

        await asyncio.gather(*(critical(i % 2) for i in range(6)))
        assert overlaps == 0

        # A holder that crashes (claims, never releases) blocks others only until expiry.
        crashed = LeaseRecord(
            name="refresh:cred-y", claim_id="crashed", expires_at=time.time() + 1.0
        )
        await instances[2]._publish(crashed)
        async with instances[0].hold("refresh:cred-y", timeout=10):
            assert time.time() >= crashed.expires_at
