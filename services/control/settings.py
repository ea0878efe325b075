"""Control-plane settings from the environment (prefix BILLSYNC_CONTROL_).

Token lists are JSON in the environment, e.g. BILLSYNC_CONTROL_ADMIN_TOKENS='["s3cr3t"]'.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ControlSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLSYNC_CONTROL_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8700
    admin_tokens: list[SecretStr] = Field(default_factory=list)
    read_tokens: list[SecretStr] = Field(default_factory=list)
    database_url: str = "sqlite+aiosqlite:///.local/billsync.db"
    # Where browsers reach this API (OAuth redirect URIs); defaults to http://host:port.
    public_base_url: str | None = None
    # YAML list of {id, email, name}: who may be named in disabledNotificationUserIds.
    users_file: Path | None = None
    consumer_group: str = "control-ingest"

    # OAuth authorization-code flows. The state is signed with this secret; when unset a
    # random one is made at start (pending authorizations then end with a restart).
    oauth_state_secret: SecretStr | None = None
    oauth_state_ttl_seconds: int = Field(default=600, ge=30, le=3600)
    # Where the browser goes after a successful callback (JSON answer when unset).
    oauth_success_redirect_url: str | None = None
    stripe_connect_client_id: str | None = None
    stripe_connect_secret_key: SecretStr | None = None  # the platform's key, for the exchange
    stripe_connect_authorize_url: str = "https://connect.stripe.com/oauth/authorize"
    stripe_connect_token_url: str = "https://connect.stripe.com/oauth/token"
    xero_client_id: str | None = None
    xero_client_secret: SecretStr | None = None
    xero_authorize_url: str = "https://login.xero.com/identity/connect/authorize"
    xero_token_url: str = "https://identity.xero.com/connect/token"
    xero_connections_url: str = "https://api.xero.com/connections"
    xero_scopes: str = (
        "openid profile email accounting.transactions accounting.contacts "
        "accounting.settings offline_access"
    )

    def base_url(self, bound_port: int | None = None) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{bound_port or self.port}"
