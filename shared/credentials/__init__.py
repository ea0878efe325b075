"""Integration credentials: typed per destination, encrypted at rest (Fernet), decrypted
only in memory when a sink needs them. Secrets are `SecretStr`: never printed or logged."""

from shared.credentials.crypto import CredentialCipher, MissingKeyError, generate_key
from shared.credentials.models import (
    Credential,
    CredentialAdapter,
    CredentialType,
    PaddleCredential,
    SalesforceCredential,
    StoredCredential,
    StripeCredential,
    XeroCredential,
)

__all__ = [
    "Credential",
    "CredentialAdapter",
    "CredentialCipher",
    "CredentialType",
    "MissingKeyError",
    "PaddleCredential",
    "SalesforceCredential",
    "StoredCredential",
    "StripeCredential",
    "XeroCredential",
    "generate_key",
]
