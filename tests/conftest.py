"""Session fixtures: a real Kafka broker, and an isolated topic namespace per test.

The broker is, in order: KAFKA_BOOTSTRAP_SERVERS if set; testcontainers' Kafka (KRaft)
where a Docker engine answers; otherwise the local broker of deploy/kafka."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.kafka.topics import delete_topics_with_prefix
from shared.settings import Settings, TopicNames

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "scripts" / "kafka.sh"


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # any failure means: no usable engine here
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    started_here = subprocess.run([str(KAFKA_SCRIPT), "status"], check=False).returncode != 0
    subprocess.run([str(KAFKA_SCRIPT), "up"], check=True)
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:9092"
    yield "127.0.0.1:9092"
    if started_here:
        subprocess.run([str(KAFKA_SCRIPT), "down"], check=False)


@pytest.fixture
async def settings(kafka_bootstrap: str) -> AsyncIterator[Settings]:
    """Fresh topic names and consumer groups for every test: tests never see each other.
    The test's topics are deleted afterwards, so a long run does not exhaust the broker's
    open files (every partition keeps its segment files open)."""
    ns = f"t{uuid.uuid4().hex[:10]}-"
    yield Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topics=TopicNames(prefix=ns),
        topic_partitions=3,
        consumer_group_prefix=ns + "billsync",
        http_port=0,
    )
    await delete_topics_with_prefix(kafka_bootstrap, ns)
