"""Runtime settings from the environment (prefix BILLSYNC_; the broker address is the
plain KAFKA_BOOTSTRAP_SERVERS that every service, tool and test honours)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class TopicNames(BaseSettings):
    """Every topic name is configurable; `prefix` namespaces a whole stack (tests use it)."""

    model_config = SettingsConfigDict(env_prefix="BILLSYNC_TOPIC_", extra="ignore")

    prefix: str = ""
    bill_generated: str = "bill-generated"
    bill_approved: str = "bill-approved"
    bill_replay: str = "bill-replay"
    accounts: str = "accounts"
    external_mappings: str = "external-mappings"
    integration_configs: str = "integration-configs"
    integration_results: str = "integration-results"
    invoice_map: str = "invoice-map"
    dead_letter: str = "dead-letter"
    dispatch_stripe: str = "dispatch.stripe"
    dispatch_paddle: str = "dispatch.paddle"
    dispatch_salesforce: str = "dispatch.salesforce"
    dispatch_xero: str = "dispatch.xero"
    credentials: str = "integration-credentials"
    # Services' own state (compacted): see shared/kafka/topics.py for each one's policy.
    monitor_state: str = "monitor-state"
    monitor_webhooks: str = "monitor-webhooks"
    webhook_events: str = "stripe-webhook-events"
    sink_schedule: str = "sink-schedule"
    sink_leases: str = "sink-leases"

    def name(self, field: str) -> str:
        return f"{self.prefix}{getattr(self, field)}"

    def dispatch(self, family: str) -> str:
        return self.name(f"dispatch_{family}")


class KafkaSecurity(BaseSettings):
    """How every Kafka client (services, tools, tests) authenticates to the broker; one set
    for the whole process, from BILLSYNC_KAFKA_* (shared.kafka.client_options applies it).
    The defaults are the local broker's plain listener."""

    model_config = SettingsConfigDict(env_prefix="BILLSYNC_KAFKA_", extra="ignore")

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # TLS: the CA that signed the broker's certificate (None = the system's trust store),
    # and a client certificate + key where the broker authenticates clients by TLS (mTLS).
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @model_validator(mode="after")
    def _complete(self) -> KafkaSecurity:
        if self.uses_sasl and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(
                f"BILLSYNC_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                "BILLSYNC_KAFKA_SASL_USERNAME and BILLSYNC_KAFKA_SASL_PASSWORD"
            )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError(
                "a client certificate needs both BILLSYNC_KAFKA_SSL_CERTFILE and "
                "BILLSYNC_KAFKA_SSL_KEYFILE"
            )
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLSYNC_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "BILLSYNC_KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    topics: TopicNames = Field(default_factory=TopicNames)
    topic_partitions: int = 6
    consumer_group_prefix: str = "billsync"
    # Observability: each service serves /metrics and /health on this port (0 = pick one).
    http_host: str = "127.0.0.1"
    http_port: int = 0
    log_level: str = "INFO"
    # Encrypts credentials at rest (Fernet key, urlsafe base64 of 32 bytes).
    credentials_key: SecretStr | None = None

    def to_env(self) -> dict[str, str]:
        """Environment variables that give a child process these same settings."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "BILLSYNC_TOPIC_PREFIX": self.topics.prefix,
            "BILLSYNC_CONSUMER_GROUP_PREFIX": self.consumer_group_prefix,
            "BILLSYNC_TOPIC_PARTITIONS": str(self.topic_partitions),
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
