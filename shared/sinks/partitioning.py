"""Which partition of a dispatch topic a delivery lands on, and so which sink instance
serves it.

Keying dispatches by credential puts all of one credential's work on one partition, so
exactly one instance of a sink (the partition's owner in the consumer group) spends that
credential's rate limit, refreshes its tokens and flushes its scheduled batches: two or
more instances then share a credential's limit correctly without talking to each other.
The router calls `dispatch_key` for every dispatch it writes."""

from __future__ import annotations

from aiokafka.partitioner import murmur2

from shared.contracts import IntegrationConfig


def dispatch_key(config: IntegrationConfig) -> str:
    """The key of a dispatch for `config`: its credential (one budget, one instance), or
    the configuration itself while it has no credential."""
    if config.integration_credentials_id:
        return f"cred:{config.integration_credentials_id}"
    return config.id


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java's and aiokafka's) picks for `key`."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions
