"""Signed, expiring, single-use OAuth `state` values (HMAC-SHA256 with a server secret)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass


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


class StateSigner:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._secret = secret
        self._ttl = ttl_seconds
        self._used: dict[str, int] = {}  # nonce -> expiry: a state works once

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, provider: str, config_id: str) -> str:
        body = {
            "p": provider,
            "c": config_id,
            "e": int(time.time()) + self._ttl,
            "n": secrets.token_urlsafe(12),
        }
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def verify(self, state: str, provider: str) -> State:
        payload, _, signature = state.partition(".")
        if not payload or not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise StateError("the state is not one this server issued")
        try:
            body = json.loads(_unb64(payload))
            parsed = State(str(body["p"]), str(body["c"]), int(body["e"]), str(body["n"]))
        except (ValueError, KeyError, TypeError):
            raise StateError("the state is malformed") from None
        now = int(time.time())
        if parsed.provider != provider:
            raise StateError(f"the state was issued for {parsed.provider}, not {provider}")
        if parsed.expires_at < now:
            raise StateError("the authorization took too long; start again")
        self._used = {n: e for n, e in self._used.items() if e >= now}
        if parsed.nonce in self._used:
            raise StateError("this authorization was already completed; start again")
        self._used[parsed.nonce] = parsed.expires_at
        return parsed
