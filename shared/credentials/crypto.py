"""Encryption at rest with a key the operator provides (BILLSYNC_CREDENTIALS_KEY)."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr


class MissingKeyError(RuntimeError):
    pass


def generate_key() -> str:
    return Fernet.generate_key().decode()


class CredentialCipher:
    def __init__(self, key: SecretStr | str | None) -> None:
        if key is None:
            raise MissingKeyError(
                "BILLSYNC_CREDENTIALS_KEY is not set: generate one with "
                "`billsync credentials keygen` and give every service the same key"
            )
        raw = key.get_secret_value() if isinstance(key, SecretStr) else key
        try:
            self._fernet = Fernet(raw.encode())
        except ValueError as exc:
            raise MissingKeyError(
                "BILLSYNC_CREDENTIALS_KEY is not a valid key (32 url-safe base64 bytes); "
                "generate one with `billsync credentials keygen`"
            ) from exc

    def encrypt(self, secrets: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise MissingKeyError(
                "cannot decrypt a stored credential: BILLSYNC_CREDENTIALS_KEY differs from "
                "the key it was written with"
            ) from exc
        return data
