"""Writing and reading credentials on their compacted topic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.credentials.crypto import CredentialCipher
from shared.credentials.models import Credential, CredentialAdapter, StoredCredential
from shared.kafka.table import CompactedTable


def seal(
    credential: Credential, cipher: CredentialCipher, previous: StoredCredential | None = None
) -> StoredCredential:
    now = datetime.now(UTC)
    return StoredCredential(
        id=credential.id,
        type=credential.type,
        name=credential.name,
        version=(previous.version + 1) if previous else credential.version,
        public=credential.public_fields(),
        secrets_ciphertext=cipher.encrypt(credential.secret_fields()),
        created_at=previous.created_at if previous else now,
        updated_at=now,
    )


def unseal(stored: StoredCredential, cipher: CredentialCipher) -> Credential:
    data: dict[str, Any] = {
        "id": stored.id,
        "type": stored.type.value,
        "name": stored.name,
        "version": stored.version,
        **stored.public,
        **cipher.decrypt(stored.secrets_ciphertext),
    }
    return CredentialAdapter.validate_python(data)


async def publish_credential(
    producer: AIOKafkaProducer, topic: str, stored: StoredCredential
) -> None:
    await producer.send_and_wait(topic, stored.to_bytes(), key=stored.id.encode())


class CredentialStore:
    """Follows the credentials topic; decrypts on demand, never caches plaintext to disk."""

    def __init__(self, topic: str, bootstrap_servers: str, cipher: CredentialCipher) -> None:
        self._cipher = cipher
        self.table = CompactedTable[StoredCredential](
            topic, bootstrap_servers, StoredCredential.model_validate_json
        )

    async def start(self) -> None:
        await self.table.start()

    async def stop(self) -> None:
        await self.table.stop()

    def stored(self, credential_id: str) -> StoredCredential | None:
        return self.table.get(credential_id)

    def get(self, credential_id: str) -> Credential | None:
        stored = self.table.get(credential_id)
        return unseal(stored, self._cipher) if stored else None
