"""OAuth `state` values: signed and expiring (HMAC-SHA256 with a server secret), recorded in
the control plane's database, bound to one browser, and used at most once.

The life of a state, one row in `oauth_states`:
  issued   `start` (an admin) signs it and records it; nobody is bound yet.
  bound    the browser opens `begin` (once): a random session id goes into an HttpOnly
           cookie and its hash into the row, and the browser goes on to the provider.
  claimed  the callback brings the state back with the same cookie; the row is claimed in
           one conditional UPDATE, so two callbacks cannot both win, and a restart
           forgets nothing (the row is in the database, not in memory).
  released a failed code exchange hands the claim back: the user's attempt is not burnt
           and the same state may complete once the provider answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Index, String, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.store.tables import ID, metadata
from shared.store.types import UTCDateTime

# The control plane's own table beside the store's (created with them on start).
oauth_states = Table(
    "oauth_states",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("integration_config_id", String(ID), nullable=False),
    Column("session_hash", String(64)),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("bound_at", UTCDateTime),
    Column("used_at", UTCDateTime),
    Index("ix_oauth_states_expires", "expires_at"),
)

SESSION_COOKIE = "billsync_oauth_session"


class StateError(ValueError):
    pass


@dataclass(frozen=True)
class State:
    provider: str
    config_id: str
    expires_at: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_hash(session: str) -> str:
    return hashlib.sha256(session.encode()).hexdigest()


class StateSigner:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl = ttl_seconds

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, provider: str, config_id: str) -> tuple[str, State]:
        state = State(provider, config_id, int(time.time()) + self.ttl, secrets.token_urlsafe(18))
        body = {"p": provider, "c": config_id, "e": state.expires_at, "n": state.nonce}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}", state

    def verify(self, state: str, provider: str) -> State:
        """The signed content; whether it is still usable is the ledger's question."""
        payload, _, signature = state.partition(".")
        if not payload or not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise StateError("the state is not one this server issued")
        try:
            body = json.loads(_unb64(payload))
            parsed = State(str(body["p"]), str(body["c"]), int(body["e"]), str(body["n"]))
        except (ValueError, KeyError, TypeError):
            raise StateError("the state is malformed") from None
        if parsed.provider != provider:
            raise StateError(f"the state was issued for {parsed.provider}, not {provider}")
        if parsed.expires_at < int(time.time()):
            raise StateError("the authorization took too long; start again")
        return parsed


class StateLedger:
    """The durable record of issued states (the control plane's database)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, state: State) -> None:
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            # Expired rows are useless: keep the table as small as the pending flows.
            await conn.execute(delete(oauth_states).where(oauth_states.c.expires_at < now))
            await conn.execute(
                insert(oauth_states).values(
                    nonce=state.nonce,
                    provider=state.provider,
                    integration_config_id=state.config_id,
                    expires_at=datetime.fromtimestamp(state.expires_at, UTC),
                )
            )

    async def bind(self, state: State) -> str:
        """Bind the state to a new browser session; return the session id for the cookie."""
        session = secrets.token_urlsafe(24)
        c = oauth_states.c
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(oauth_states)
                .where(c.nonce == state.nonce, c.bound_at.is_(None), c.used_at.is_(None))
                .values(session_hash=session_hash(session), bound_at=datetime.now(UTC))
            )
            if done.rowcount != 1:
                raise StateError(
                    "this authorization link was already opened (or has expired); start again"
                )
        return session

    async def claim(self, state: State, session: str | None) -> None:
        """Mark the state used by this callback, or raise StateError saying why not."""
        c = oauth_states.c
        async with self._engine.begin() as conn:
            row = (await conn.execute(select(c.session_hash).where(c.nonce == state.nonce))).first()
            if row is None:
                raise StateError("the state is unknown or expired; start again")
            if (
                session is None
                or row.session_hash is None
                or not hmac.compare_digest(row.session_hash, session_hash(session))
            ):
                raise StateError(
                    "this authorization was started in another browser (or cookies are "
                    "blocked); start again from this browser"
                )
            done = await conn.execute(
                update(oauth_states)
                .where(c.nonce == state.nonce, c.used_at.is_(None))
                .values(used_at=datetime.now(UTC))
            )
            if done.rowcount != 1:
                raise StateError("this authorization was already completed; start again")

    async def release(self, state: State) -> None:
        """The exchange failed: the attempt may be completed again."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(oauth_states).where(oauth_states.c.nonce == state.nonce).values(used_at=None)
            )
