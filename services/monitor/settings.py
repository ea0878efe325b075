"""Monitor settings (env prefix BILLSYNC_MONITOR_; the control plane's address and admin
token are also read from BILLSYNC_CONTROL_URL / BILLSYNC_CONTROL_ADMIN_TOKEN)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class MonitorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BILLSYNC_MONITOR_", extra="ignore", populate_by_name=True
    )

    error_threshold: int = Field(default=10, ge=1)
    # Event ids remembered per configuration so a record published twice counts once.
    remembered_ids: int = Field(default=200, ge=10)

    control_url: str = Field(
        default="http://127.0.0.1:8700",
        validation_alias=AliasChoices("BILLSYNC_MONITOR_CONTROL_URL", "BILLSYNC_CONTROL_URL"),
    )
    admin_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "BILLSYNC_MONITOR_ADMIN_TOKEN", "BILLSYNC_CONTROL_ADMIN_TOKEN"
        ),
    )
    control_timeout: float = 10.0
    disable_retry_max_delay: float = 60.0

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "billsync@localhost"
    smtp_starttls: bool = False
    smtp_use_tls: bool = False  # implicit TLS (port 465)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: float = 10.0
    # YAML list of {id, email, name}: the control plane's users file.
    users_file: str | None = Field(
        default=None,
        validation_alias=AliasChoices("BILLSYNC_MONITOR_USERS_FILE", "BILLSYNC_CONTROL_USERS_FILE"),
    )

    # Outbound invoice.billing_provider_error notifications (off unless a URL is set).
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_max_attempts: int = Field(default=6, ge=1)
    webhook_base_delay: float = 1.0
    webhook_max_delay: float = 60.0
    webhook_timeout: float = 10.0
    webhook_queue_size: int = 1000  # outbox records held by the delivery workers
