"""One producer setup for every service: acks from all replicas, idempotent, batched."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from shared.kafka.client_options import kafka_options


def make_producer(bootstrap_servers: str, **overrides: object) -> AIOKafkaProducer:
    options: dict[str, object] = {
        **kafka_options(bootstrap_servers),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 512 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        "compression_type": None,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)
