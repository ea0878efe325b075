"""Credentials that change at the sink: OAuth access tokens refreshed with rotating
refresh tokens (Xero: a new refresh token on every refresh, the old one valid for a
30-minute grace; unused ones expire after 60 days).

The order that keeps access through any crash:

1. re-read the stored credential (another instance, or this one before a restart, may
   have refreshed already: then its access token is used and nothing is exchanged);
2. exchange the stored refresh token at the provider (authlib's OAuth 2 client);
3. save the new tokens through the control plane's single writer, conditional on the
   version read in 1, and wait for it to be written;
4. only then use the new access token.

A crash between 2 and 3 leaves the old refresh token stored; it is still valid for the
provider's grace period, so the next attempt (which re-reads, step 1) refreshes again. A
failed save raises, so the new access token is never used unsaved.

One refresh per credential at a time: a lock per credential within the process, and a
lease across instances (`shared.sinks.leases.KafkaLeases`, one Kafka partition, so every
instance agrees who holds it; a crashed holder's claim expires). The conditional save is
the safety net should two refreshes ever overlap (a lease expired mid-refresh): one save
wins, the other re-reads and uses the winner's tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiohttp
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.credentials import Credential, CredentialCipher
from shared.credentials.models import StoredCredential
from shared.credentials.store import unseal
from shared.kafka.table import read_snapshot
from shared.logging import get_logger
from shared.sinks.errors import AuthenticationError, RetriableError
from shared.sinks.locks import KeyedLocks

log = get_logger("sink.tokens")


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_at: datetime


class StaleCredentialError(Exception):
    """The stored credential moved on since it was read (someone else saved first)."""


class CredentialSaveError(Exception):
    """The single writer did not confirm the save (unreachable, refused, timed out)."""


class CredentialSource(Protocol):
    """The stored credential (read fresh, not from a cache) and the single writer."""

    async def latest(self, credential_id: str) -> Credential | None: ...

    async def save(self, credential: Credential, tokens: TokenSet) -> None:
        """Persist `tokens` if `credential.version` is still the stored one, else raise
        StaleCredentialError; CredentialSaveError when not confirmed. Returns once
        written."""


class Lease(Protocol):
    """Mutual exclusion by name across instances (shared/sinks/leases.py)."""

    def hold(self, name: str) -> contextlib.AbstractAsyncContextManager[None]: ...


class TokenExchange(Protocol):
    async def refresh(self, credential: Credential) -> TokenSet: ...


def _secret(credential: Credential, name: str) -> str | None:
    value = getattr(credential, name, None)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if isinstance(value, str) else None


def is_fresh(credential: Credential, now: datetime, skew: timedelta) -> bool:
    """An access token that is set and valid for at least `skew` more."""
    expires = getattr(credential, "access_token_expires_at", None)
    return bool(_secret(credential, "access_token")) and (
        isinstance(expires, datetime) and expires - skew > now
    )


class AuthlibExchange:
    """The refresh-token grant through authlib's OAuth 2 client (client_secret_basic)."""

    def __init__(self, token_url: str, timeout: float = 30.0) -> None:
        self.token_url = token_url
        self.timeout = timeout

    async def refresh(self, credential: Credential) -> TokenSet:
        import httpx2
        from authlib.integrations.base_client.errors import OAuthError
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        client_id = getattr(credential, "client_id", None)
        refresh_token = _secret(credential, "refresh_token")
        if not isinstance(client_id, str) or not refresh_token:
            raise AuthenticationError(
                f"credential {credential.id!r} has no refresh token; connect it again by OAuth"
            )
        async with AsyncOAuth2Client(
            client_id=client_id,
            client_secret=_secret(credential, "client_secret"),
            token_endpoint_auth_method="client_secret_basic",
            timeout=self.timeout,
        ) as client:
            try:
                token: dict[str, Any] = await client.refresh_token(
                    self.token_url, refresh_token=refresh_token
                )
            except OAuthError as exc:  # invalid_grant: revoked or expired refresh token
                raise AuthenticationError(
                    f"the provider refused to refresh credential {credential.id!r} "
                    f"({exc.error}); connect it again by OAuth"
                ) from None
            except (httpx2.HTTPError, ValueError) as exc:  # network, 5xx: old token stays
                raise RetriableError(
                    f"token refresh for credential {credential.id!r} failed: {type(exc).__name__}"
                ) from None
        expires_in = float(token.get("expires_in") or 1800)
        return TokenSet(
            access_token=str(token["access_token"]),
            refresh_token=str(token.get("refresh_token") or refresh_token),
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
        )


class TokenRefresher:
    """`access_token(credential)`: a valid access token, refreshed and saved first if
    needed. Failures are classified (AuthenticationError, RetriableError)."""

    def __init__(
        self,
        source: CredentialSource,
        exchange: TokenExchange,
        skew: timedelta = timedelta(minutes=2),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lease: Lease | None = None,
    ) -> None:
        self.source = source
        self.exchange = exchange
        self.lease = lease
        self.skew = skew
        self.clock = clock
        self._locks = KeyedLocks()
        self.refreshes = 0

    async def access_token(self, credential: Credential) -> str:
        if is_fresh(credential, self.clock(), self.skew):
            return _secret(credential, "access_token") or ""
        async with (
            self._locks.hold(credential.id),
            self.lease.hold(f"refresh:{credential.id}") if self.lease else contextlib.nullcontext(),
        ):
            for _ in range(3):
                stored = await self.source.latest(credential.id)
                if stored is None:
                    raise AuthenticationError(f"credential {credential.id!r} does not exist")
                if is_fresh(stored, self.clock(), self.skew):
                    return _secret(stored, "access_token") or ""
                tokens = await self.exchange.refresh(stored)
                self.refreshes += 1
                try:
                    await self.source.save(stored, tokens)
                except StaleCredentialError:
                    log.info("token_refresh_lost_race", credential_id=credential.id)
                    continue  # someone saved first: use theirs
                except CredentialSaveError as exc:
                    # Not saved: the new access token must not be used (the stored refresh
                    # token is the old one, still in its grace period).
                    raise RetriableError(
                        f"refreshed tokens for credential {credential.id!r} could not be "
                        f"saved ({exc}); retrying"
                    ) from None
                log.info("token_refreshed", credential_id=credential.id)
                return tokens.access_token
        raise RetriableError(f"credential {credential.id!r} kept changing during refresh")


# ---- the control plane as the source --------------------------------------------------


class ControlPlaneLink(BaseSettings):
    """Where a sink saves refreshed credentials (the control plane's credentials API)."""

    model_config = SettingsConfigDict(env_prefix="BILLSYNC_SINK_", extra="ignore")

    control_url: str = "http://127.0.0.1:8700"
    control_token: SecretStr | None = None


class ControlPlaneCredentials:
    """Reads the credentials topic to its end (never a stale cache) and saves through the
    control plane's `PUT /integrationcredentials/{id}` with the expected version."""

    def __init__(
        self,
        topic: str,
        bootstrap_servers: str,
        cipher: CredentialCipher,
        link: ControlPlaneLink,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap_servers
        self._cipher = cipher
        self._link = link
        self._session = session

    async def latest(self, credential_id: str) -> Credential | None:
        stored = (
            await read_snapshot(self.topic, self._bootstrap, StoredCredential.model_validate_json)
        ).get(credential_id)
        return unseal(stored, self._cipher) if stored else None

    async def save(self, credential: Credential, tokens: TokenSet) -> None:
        token = self._link.control_token
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        body = {
            "type": credential.type.value,
            "version": credential.version,
            "accessToken": tokens.access_token,
            "refreshToken": tokens.refresh_token,
            "accessTokenExpiresAt": tokens.expires_at.isoformat(),
        }
        url = f"{self._link.control_url.rstrip('/')}/integrationcredentials/{credential.id}"
        session = self._session or aiohttp.ClientSession()
        try:
            async with session.put(url, json=body, headers=headers) as resp:
                if resp.status == 409:
                    raise StaleCredentialError(credential.id)
                if resp.status >= 300:
                    raise CredentialSaveError(f"the control plane answered {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CredentialSaveError(type(exc).__name__) from None
        finally:
            if self._session is None:
                await session.close()
