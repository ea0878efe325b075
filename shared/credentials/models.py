"""Credential shapes per destination. Secrets live in `SecretStr` fields; everything else
is public (connected account id, login URL, tenant id) and may be shown by the API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, TypeAdapter

from shared.contracts.base import StrictWireModel, WireModel


class CredentialType(StrEnum):
    STRIPE = "STRIPE"
    PADDLE = "PADDLE"
    SALESFORCE = "SALESFORCE"
    XERO = "XERO"


class _Base(StrictWireModel):
    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")
    name: str = ""
    version: int = 1

    @classmethod
    def secret_names(cls) -> set[str]:
        """Fields declared as secrets, set or not (an unset secret is not public either)."""
        return {n for n, f in cls.model_fields.items() if "SecretStr" in str(f.annotation)}

    def secret_fields(self) -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in self if isinstance(v, SecretStr)}

    def public_fields(self) -> dict[str, Any]:
        hidden = self.secret_names() | {"id", "name", "version", "type"}
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in hidden}


class StripeCredential(_Base):
    type: Literal[CredentialType.STRIPE] = CredentialType.STRIPE
    api_key: SecretStr  # secret (sk_) or restricted (rk_) key, live or test
    connected_account_id: str | None = Field(default=None, pattern=r"^acct_[A-Za-z0-9]+$")
    webhook_secret: SecretStr | None = None


class PaddleCredential(_Base):
    type: Literal[CredentialType.PADDLE] = CredentialType.PADDLE
    api_key: SecretStr


class SalesforceCredential(_Base):
    type: Literal[CredentialType.SALESFORCE] = CredentialType.SALESFORCE
    grant_type: Literal["JWT_BEARER", "CLIENT_CREDENTIALS", "REFRESH_TOKEN"] = "JWT_BEARER"
    client_id: str
    login_url: str = "https://login.salesforce.com"
    username: str | None = None
    client_secret: SecretStr | None = None
    private_key: SecretStr | None = None
    refresh_token: SecretStr | None = None


class XeroCredential(_Base):
    type: Literal[CredentialType.XERO] = CredentialType.XERO
    client_id: str
    tenant_id: str | None = None
    client_secret: SecretStr
    access_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    access_token_expires_at: datetime | None = None


Credential = Annotated[
    StripeCredential | PaddleCredential | SalesforceCredential | XeroCredential,
    Field(discriminator="type"),
]
CredentialAdapter: TypeAdapter[Credential] = TypeAdapter(Credential)


class StoredCredential(WireModel):
    """What the `integration-credentials` topic holds: secrets only as ciphertext."""

    id: str
    type: CredentialType
    name: str = ""
    version: int = 1
    public: dict[str, Any] = Field(default_factory=dict)
    secrets_ciphertext: str
    created_at: datetime
    updated_at: datetime
