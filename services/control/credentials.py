"""The single writer of the `integration-credentials` topic, and the public view of a
credential: public settings plus the names of the secrets that are set, never a secret
(not even masked)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, get_args

import pydantic
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from pydantic.alias_generators import to_camel

from services.control.errors import conflict, not_found, pydantic_details, validation_error
from services.control.validation import as_json
from shared.credentials import (
    Credential,
    CredentialAdapter,
    CredentialCipher,
    CredentialType,
    PaddleCredential,
    SalesforceCredential,
    StoredCredential,
    StripeCredential,
    XeroCredential,
)
from shared.credentials.store import seal, unseal
from shared.kafka.table import CompactedTable
from shared.logging import get_logger
from shared.settings import Settings

log = get_logger(__name__)
TYPES = {t.value for t in CredentialType}


class CredentialWriter:
    def __init__(
        self, settings: Settings, producer: AIOKafkaProducer, cipher: CredentialCipher
    ) -> None:
        self._producer = producer
        self._cipher = cipher
        self._lock = asyncio.Lock()
        self.table = CompactedTable[StoredCredential](
            settings.topics.name("credentials"),
            settings.kafka_bootstrap_servers,
            StoredCredential.model_validate_json,
        )

    async def start(self) -> None:
        await self.table.start()

    async def stop(self) -> None:
        await self.table.stop()

    def get(self, credential_id: str) -> StoredCredential | None:
        return self.table.get(credential_id)

    def require(self, credential_id: str) -> StoredCredential:
        stored = self.table.get(credential_id)
        if stored is None:
            raise not_found("integration credential", credential_id)
        return stored

    def unsealed(self, stored: StoredCredential) -> Credential:
        """The credential with its secrets, for a verifier's one call: never returned."""
        return unseal(stored, self._cipher)

    def all(self) -> list[StoredCredential]:
        return sorted(self.table.values(), key=lambda c: c.id)

    async def create(self, body: dict[str, Any], actor: str) -> StoredCredential:
        body = {**body, "id": body.get("id") or f"cred_{uuid.uuid4().hex[:16]}"}
        body.pop("version", None)
        credential = parse_credential(body)
        async with self._lock:
            if credential.id in self.table.data:
                raise conflict(
                    f"integration credential {credential.id!r} already exists; rotate it with PUT"
                )
            return await self._write(credential, None, "create", actor)

    async def rotate(
        self, credential_id: str, body: dict[str, Any], actor: str
    ) -> StoredCredential:
        """Replace settings and secrets; a secret left out keeps its current value."""
        async with self._lock:
            stored = self.require(credential_id)
            expected = body.pop("version", None)
            if expected is not None and (
                not isinstance(expected, int) or isinstance(expected, bool)
            ):
                raise validation_error(
                    "version must be a whole number: the version you are rotating",
                    [{"field": "version", "message": "a whole number"}],
                )
            if expected is not None and expected != stored.version:
                raise conflict(
                    f"integration credential {credential_id!r} is at version {stored.version}, "
                    f"not {expected}"
                )
            if body.get("type", stored.type.value) != stored.type.value:
                raise validation_error(
                    "a credential's type cannot change; create a new credential",
                    [{"field": "type", "message": f"this credential is {stored.type.value}"}],
                )
            merged = _merge(unseal(stored, self._cipher), {**body, "id": credential_id})
            return await self._write(parse_credential(merged), stored, "rotate", actor)

    async def upsert(self, credential: Credential, actor: str) -> StoredCredential:
        async with self._lock:
            previous = self.table.get(credential.id)
            return await self._write(credential, previous, "upsert", actor)

    async def delete(self, credential_id: str, in_use_by: list[str], actor: str) -> None:
        async with self._lock:
            self.require(credential_id)
            if in_use_by:
                raise conflict(
                    f"integration credential {credential_id!r} is attached to "
                    f"{', '.join(in_use_by)}; disconnect those configurations first"
                )
            await self.table.write(self._producer, credential_id, None, None)
            log.info("credential_deleted", credential_id=credential_id, actor=actor)

    async def _write(
        self, credential: Credential, previous: StoredCredential | None, action: str, actor: str
    ) -> StoredCredential:
        stored = seal(credential, self._cipher, previous)
        await self.table.write(self._producer, stored.id, stored, stored.to_bytes())
        log.info(
            "credential_written",
            credential_id=stored.id,
            credential_type=stored.type.value,
            version=stored.version,
            action=action,
            actor=actor,
        )
        return stored

    def view(self, stored: StoredCredential) -> dict[str, Any]:
        secret_names = sorted(
            to_camel(k)
            for k, v in self._cipher.decrypt(stored.secrets_ciphertext).items()
            if v is not None
        )
        return public_view(stored, secret_names)


def _secret_fields() -> dict[str, set[str]]:
    """Per type, the fields that hold secrets (an unset optional secret is stored as a
    public null by `seal`; the view leaves those out too)."""
    out: dict[str, set[str]] = {}
    for model in (StripeCredential, PaddleCredential, SalesforceCredential, XeroCredential):
        kind = model.model_fields["type"].default
        out[str(kind)] = {
            name
            for name, f in model.model_fields.items()
            if f.annotation is SecretStr or SecretStr in get_args(f.annotation)
        }
    return out


SECRET_FIELDS = _secret_fields()


def public_view(stored: StoredCredential, secrets_set: list[str]) -> dict[str, Any]:
    hidden = SECRET_FIELDS.get(stored.type.value, set())
    public = {to_camel(k): v for k, v in stored.public.items() if k not in hidden}
    return {
        "id": stored.id,
        "type": stored.type.value,
        "name": stored.name,
        "version": stored.version,
        **public,
        "secretsSet": secrets_set,
        "createdAt": stored.created_at.isoformat(),
        "updatedAt": stored.updated_at.isoformat(),
    }


def parse_credential(body: dict[str, Any]) -> Credential:
    if body.get("type") not in TYPES:
        raise validation_error(
            "type must be one of " + ", ".join(sorted(TYPES)),
            [{"field": "type", "message": "one of " + ", ".join(sorted(TYPES))}],
        )
    try:
        return CredentialAdapter.validate_json(as_json(body), strict=True)
    except pydantic.ValidationError as exc:
        details = pydantic_details(exc, TYPES)
        raise validation_error(
            f"the credential has {len(details)} problem(s); see details", details
        ) from None


def _merge(current: Credential, body: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in current
    }
    aliases = {(f.alias or n): n for n, f in type(current).model_fields.items()}
    for key, value in body.items():
        base[aliases.get(key, key)] = value
    base.pop("version", None)
    return base
