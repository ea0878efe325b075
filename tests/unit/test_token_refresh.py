"""Token refresh with rotating refresh tokens: saved before used, re-read before refreshing,
one refresh per credential at a time, and a crash between refresh and save loses nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from shared.credentials import Credential, XeroCredential
from shared.sinks.errors import AuthenticationError, RetriableError
from shared.sinks.token_refresh import (
    CredentialSaveError,
    StaleCredentialError,
    TokenRefresher,
    TokenSet,
    is_fresh,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class RotatingProvider:
    """Xero's rule: every refresh returns a new refresh token; the one just used stays
    valid for a grace period (here: until the next-but-one rotation)."""

    def __init__(self) -> None:
        self.generation = 0
        self.valid = {"rt-0"}
        self.exchanges = 0
        self.gate: asyncio.Event | None = None

    async def refresh(self, credential: Credential) -> TokenSet:
        assert isinstance(credential, XeroCredential) and credential.refresh_token
        used = credential.refresh_token.get_secret_value()
        if self.gate is not None:
            await self.gate.wait()
        if used not in self.valid:
            raise AuthenticationError("invalid_grant")
        self.exchanges += 1
        self.generation += 1
        new = f"rt-{self.generation}"
        self.valid = {used, new}  # the used one keeps its grace
        return TokenSet(f"at-{self.generation}", new, NOW + timedelta(minutes=30))


class Store:
    """The control plane's single writer, with its version check."""

    def __init__(self, credential: XeroCredential) -> None:
        self.credential = credential
        self.fail_next_save = False
        self.saves = 0

    async def latest(self, credential_id: str) -> Credential | None:
        return self.credential

    async def save(self, credential: Credential, tokens: TokenSet) -> None:
        if self.fail_next_save:
            self.fail_next_save = False
            raise CredentialSaveError("control plane unreachable")
        if credential.version != self.credential.version:
            raise StaleCredentialError(credential.id)
        self.saves += 1
        self.credential = self.credential.model_copy(
            update={
                "access_token": SecretStr(tokens.access_token),
                "refresh_token": SecretStr(tokens.refresh_token),
                "access_token_expires_at": tokens.expires_at,
                "version": self.credential.version + 1,
            }
        )


def expired() -> XeroCredential:
    return XeroCredential(
        id="cred-x",
        client_id="client",
        client_secret=SecretStr("secret"),
        tenant_id="tenant-1",
        access_token=SecretStr("at-0"),
        refresh_token=SecretStr("rt-0"),
        access_token_expires_at=NOW - timedelta(minutes=1),
    )


def refresher(store: Store, provider: RotatingProvider) -> TokenRefresher:
    return TokenRefresher(store, provider, clock=lambda: NOW)


async def test_refreshed_tokens_are_saved_before_the_access_token_is_used() -> None:
    store, provider = Store(expired()), RotatingProvider()
    token = await refresher(store, provider).access_token(expired())
    assert token == "at-1"
    assert store.saves == 1
    assert store.credential.refresh_token is not None
    assert store.credential.refresh_token.get_secret_value() == "rt-1"


async def test_a_fresh_token_is_used_without_an_exchange() -> None:
    store, provider = Store(expired()), RotatingProvider()
    fresh = expired().model_copy(update={"access_token_expires_at": NOW + timedelta(minutes=20)})
    assert await refresher(store, provider).access_token(fresh) == "at-0"
    assert provider.exchanges == 0


async def test_the_stored_credential_is_re_read_before_refreshing() -> None:
    store, provider = Store(expired()), RotatingProvider()
    await refresher(store, provider).access_token(expired())
    # Another instance (or this one before a restart) holds the old, expired copy.
    other = refresher(store, provider)
    assert await other.access_token(expired()) == "at-1"
    assert provider.exchanges == 1


async def test_a_crash_between_refresh_and_save_keeps_access() -> None:
    store, provider = Store(expired()), RotatingProvider()
    store.fail_next_save = True
    with pytest.raises(RetriableError):
        await refresher(store, provider).access_token(expired())
    # The new access token was never used; the stored refresh token is the old one, which
    # the provider still honours (grace): the next attempt refreshes again and saves.
    assert store.saves == 0
    assert await refresher(store, provider).access_token(expired()) == "at-2"
    assert store.saves == 1


async def test_one_refresh_per_credential_at_a_time() -> None:
    store, provider = Store(expired()), RotatingProvider()
    provider.gate = asyncio.Event()
    shared = refresher(store, provider)
    calls = [asyncio.create_task(shared.access_token(expired())) for _ in range(5)]
    await asyncio.sleep(0)
    provider.gate.set()
    assert set(await asyncio.gather(*calls)) == {"at-1"}
    assert provider.exchanges == 1


async def test_losing_a_race_to_another_instance_uses_the_winners_tokens() -> None:
    store, provider = Store(expired()), RotatingProvider()

    class RacedStore(Store):
        raced = False

        async def save(self, credential: Credential, tokens: TokenSet) -> None:
            if not self.raced:  # another instance saves first
                self.raced = True
                await store.save(store.credential, await provider.refresh(store.credential))
            await store.save(credential, tokens)

        async def latest(self, credential_id: str) -> Credential | None:
            return store.credential

    token = await TokenRefresher(RacedStore(expired()), provider, clock=lambda: NOW).access_token(
        expired()
    )
    assert token == store.credential.access_token.get_secret_value()  # type: ignore[union-attr]
    assert store.saves == 1


def test_freshness_needs_a_token_and_time_left() -> None:
    skew = timedelta(minutes=2)
    assert not is_fresh(expired(), NOW, skew)
    soon = expired().model_copy(update={"access_token_expires_at": NOW + timedelta(minutes=1)})
    assert not is_fresh(soon, NOW, skew)
    later = expired().model_copy(update={"access_token_expires_at": NOW + timedelta(minutes=9)})
    assert is_fresh(later, NOW, skew)
