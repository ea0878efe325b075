"""Every topic billsync uses, created from this one place (idempotently) with its
partition count and cleanup policy. A service that needs a topic adds it to `topic_specs`
(and to the table in docs/architecture.md), never creates one of its own."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.kafka.client_options import check_access, kafka_options
from shared.logging import get_logger
from shared.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    # Time-bounded (compacted too: one record per key, and keys that stop mattering expire).
    retention_ms: int | None = None

    def config(self) -> dict[str, str]:
        if self.compacted:
            config = {
                "cleanup.policy": "compact",
                "min.compaction.lag.ms": "0",
                "segment.ms": "600000",
            }
            if self.retention_ms is not None:
                config["cleanup.policy"] = "compact,delete"
                config["retention.ms"] = str(self.retention_ms)
            return config
        config = {"cleanup.policy": "delete"}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        return config

    @property
    def policy(self) -> str:
        return self.config()["cleanup.policy"]


# Stripe retries a failed webhook delivery for up to 3 days: processed ids are kept 7.
WEBHOOK_EVENTS_RETENTION_MS = 7 * 24 * 3600 * 1000
# Lease claims matter for a minute or two; a day keeps the topic small.
LEASES_RETENTION_MS = 24 * 3600 * 1000


def topic_specs(settings: Settings) -> list[TopicSpec]:
    t, n = settings.topics, settings.topic_partitions
    compacted = [
        "accounts",
        "external_mappings",
        "integration_configs",
        "invoice_map",
        "credentials",
        "monitor_state",  # the monitor's error counts per configuration
        "sink_schedule",  # envelopes collected for scheduled delivery
    ]
    plain = [
        "bill_generated",
        "bill_approved",
        "bill_replay",
        "integration_results",
        "dead_letter",
        "dispatch_stripe",
        "dispatch_paddle",
        "dispatch_salesforce",
        "dispatch_xero",
    ]
    # Compacted state topics are small; one partition keeps their order total.
    specs = [TopicSpec(t.name(f), 1, compacted=True) for f in compacted]
    specs.append(
        TopicSpec(t.name("webhook_events"), 1, True, retention_ms=WEBHOOK_EVENTS_RETENTION_MS)
    )
    # One partition: every instance sees claims in the same order (shared/sinks/leases.py).
    specs.append(TopicSpec(t.name("sink_leases"), 1, retention_ms=LEASES_RETENTION_MS))
    # The monitor's durable outbox of provider-error webhooks: one partition keeps them in
    # the order the errors happened (services/monitor/notify_webhook.py).
    specs.append(TopicSpec(t.name("monitor_webhooks"), 1))
    specs += [TopicSpec(t.name(f), n) for f in plain]
    return specs


async def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create any missing topic; existing topics are left as they are. Returns created names."""
    specs = specs if specs is not None else topic_specs(settings)
    await check_access(settings.kafka_bootstrap_servers)  # a clear message, not a timeout
    admin = AIOKafkaAdminClient(**kafka_options(settings.kafka_bootstrap_servers))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        created: list[str] = []
        for spec in missing:
            try:
                await admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.config())]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another service: that is the goal
        if created:
            log.info("topics_created", topics=created)
        return created
    finally:
        await admin.close()


async def delete_topics_with_prefix(bootstrap_servers: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix` (test and benchmark namespaces)."""
    if not prefix:
        raise ValueError("refusing to delete every topic: give a non-empty prefix")
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap_servers))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()
