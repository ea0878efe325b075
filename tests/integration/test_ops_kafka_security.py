"""TLS + SASL end to end: a second broker with only a SASL_SSL listener for clients (a CA
made for the test, SCRAM-SHA-512 users), and bills routed and delivered over it by the
router and the Stripe sink, with topics, credentials, configurations and the test's own
clients all configured by the same BILLSYNC_KAFKA_* settings. A wrong password is refused
with a message that says what to fix."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.contracts import RunStatus
from shared.kafka.client_options import KafkaAccessError
from shared.kafka.topics import ensure_topics
from shared.settings import Settings, TopicNames
from tests.ops.sasl_broker import SaslBroker, sasl_ssl_broker, security_env
from tests.support.builders import account, bill, config, line
from tests.support.kafka import publish
from tests.support.services import ROOT, running_router
from tests.support.stripe_stack import stripe_stack

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    with sasl_ssl_broker(tmp_path_factory.mktemp("sasl-broker")) as running:
        yield running


def secured_settings(broker: SaslBroker) -> Settings:
    ns = f"t{uuid.uuid4().hex[:10]}-"
    return Settings(
        kafka_bootstrap_servers=broker.bootstrap,
        topics=TopicNames(prefix=ns),
        topic_partitions=2,
        consumer_group_prefix=ns + "billsync",
    )


async def test_bills_routed_and_delivered_over_sasl_ssl(
    broker: SaslBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in security_env(broker).items():
        monkeypatch.setenv(key, value)
    settings = secured_settings(broker)
    async with stripe_stack(settings, keys=("sk_test_tls",), customers=3) as stack:
        await stack.credential("cred-tls", "sk_test_tls")
        await stack.configs(config("cfg-tls", "STRIPE_TEST", integrationCredentialsId="cred-tls"))
        items = [
            bill(f"bill-{i}", f"acc-{i % 3 + 1}", embed=account(f"acc-{i % 3 + 1}"),
                 lines=[line(f"l{i}", "USAGE", "7.50", quantity="2")])
            for i in range(6)
        ]  # fmt: skip
        async with running_router(stack.settings), stack.sink():
            await publish(
                broker.bootstrap,
                settings.topics.name("bill_generated"),
                [(b.id.encode(), b.to_bytes()) for b in items],
            )
            runs = await stack.wait_final_runs(6)
    assert {r.status for r in runs.values()} == {RunStatus.COMPLETE}
    delivered = stack.invoices_by_bill()
    assert sorted(delivered) == sorted(b.id for b in items)
    assert all(len(invoices) == 1 for invoices in delivered.values())


async def test_wrong_password_is_refused_with_a_clear_message(
    broker: SaslBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "not-the-password"
    for key, value in security_env(broker, password=wrong).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(KafkaAccessError) as refused:
        await ensure_topics(secured_settings(broker))
    message = str(refused.value)
    assert message == (
        f"the Kafka broker at {broker.bootstrap} refused SASL SCRAM-SHA-512 authentication as "
        "user 'billsync': check BILLSYNC_KAFKA_SASL_USERNAME, BILLSYNC_KAFKA_SASL_PASSWORD "
        "and BILLSYNC_KAFKA_SASL_MECHANISM"
    )


def test_a_service_with_a_wrong_password_stops_saying_why(
    broker: SaslBroker, tmp_path: Path
) -> None:
    wrong = "not-the-password"
    env = {
        "PATH": "/usr/bin:/bin",
        **security_env(broker, password=wrong),
        "BILLSYNC_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}-",
        "BILLSYNC_HTTP_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.router"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "refused SASL SCRAM-SHA-512 authentication as user 'billsync'" in output
    assert wrong not in output and broker.password not in output
