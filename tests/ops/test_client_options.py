"""One set of Kafka security settings (BILLSYNC_KAFKA_*) becomes the aiokafka options of
every client; incomplete settings are refused saying what is missing."""

from __future__ import annotations

import ast
import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.kafka.client_options import kafka_options
from shared.settings import KafkaSecurity
from tests.ops.sasl_broker import make_certificates


def test_plaintext_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SECURITY_PROTOCOL", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CAFILE"):
        monkeypatch.delenv(f"BILLSYNC_KAFKA_{name}", raising=False)
    assert kafka_options("h:9092") == {
        "bootstrap_servers": "h:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca, _ = make_certificates(tmp_path)
    monkeypatch.setenv("BILLSYNC_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BILLSYNC_KAFKA_SSL_CAFILE", str(ca))
    monkeypatch.setenv("BILLSYNC_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("BILLSYNC_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("BILLSYNC_KAFKA_SASL_PASSWORD", "pw")
    options = kafka_options("broker:9093")
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert options == {
        "bootstrap_servers": "broker:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "pw",
    }


def test_the_password_is_a_secret() -> None:
    security = KafkaSecurity(
        security_protocol="SASL_PLAINTEXT", sasl_username="svc", sasl_password="hunter2"
    )
    assert "hunter2" not in repr(security) and "hunter2" not in str(security.model_dump())


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"security_protocol": "SASL_SSL"}, "BILLSYNC_KAFKA_SASL_USERNAME"),
        ({"security_protocol": "SSL", "ssl_certfile": "c.pem"}, "BILLSYNC_KAFKA_SSL_KEYFILE"),
        ({"sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
    ],
)
def test_incomplete_settings_are_refused(fields: dict[str, str], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        KafkaSecurity(**fields)  # type: ignore[arg-type]


KAFKA_CLIENTS = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient"}


def test_every_kafka_client_is_built_with_the_security_settings() -> None:
    """Every construction of an aiokafka client in the repository (services, tools, tests,
    benchmarks) takes its options from kafka_options, so no client ignores TLS/SASL."""
    root = Path(__file__).resolve().parents[2]
    bypassing = []
    # The source folders only: deploy/kafka/data holds a live broker's files, which come
    # and go while the tree is walked.
    sources = ("services", "shared", "tests", "benchmarks", "fakes")
    for path in sorted(p for folder in sources for p in (root / folder).glob("**/*.py")):
        source = path.read_text()
        if not any(name in source for name in KAFKA_CLIENTS):
            continue
        tree = ast.parse(source)
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for call in ast.walk(func):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id in KAFKA_CLIENTS
                    and "kafka_options(" not in (ast.get_source_segment(source, func) or "")
                ):
                    bypassing.append(f"{path.relative_to(root)}:{call.lineno}")
    assert not bypassing, f"build these clients with **kafka_options(...): {bypassing}"
