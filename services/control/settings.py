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
    # Each provider's client id, secret and endpoints are its flow's own settings, declared
    # in its destination's package (shared/sinks/oauth.py: OAuthClientSettings).

    def base_url(self, bound_port: int | None = None) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{bound_port or self.port}"
