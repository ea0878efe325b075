"""The one place Kafka client options are built: every AIOKafkaConsumer, AIOKafkaProducer
and admin client in services, tools and tests is constructed with `kafka_options(...)`, so
the TLS and SASL settings (shared.settings.KafkaSecurity, BILLSYNC_KAFKA_*) are honoured
everywhere. `access_problem` turns the client's failure to connect into a message that
says what to fix."""

from __future__ import annotations

import ssl

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError, SaslAuthenticationFailed
from aiokafka.helpers import create_ssl_context

from shared.logging import get_logger
from shared.settings import KafkaSecurity

log = get_logger(__name__)


def kafka_options(
    bootstrap_servers: str, security: KafkaSecurity | None = None
) -> dict[str, object]:
    """Keyword arguments for any aiokafka client: the broker address plus the security
    settings (read from the environment unless given)."""
    security = security if security is not None else KafkaSecurity()
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap_servers,
        "security_protocol": security.security_protocol,
    }
    if security.uses_tls:
        options["ssl_context"] = ssl_context(security)
    if security.uses_sasl:
        password = security.sasl_password  # present: KafkaSecurity's validator checks it
        options["sasl_mechanism"] = security.sasl_mechanism
        options["sasl_plain_username"] = security.sasl_username
        options["sasl_plain_password"] = password.get_secret_value() if password else ""
    return options


class KafkaAccessError(Exception):
    """The broker could not be reached or refused our credentials; the message says what
    to fix (never the password)."""


async def check_access(
    bootstrap_servers: str, security: KafkaSecurity | None = None, timeout_ms: int = 15_000
) -> None:
    """Connect (TLS handshake, SASL authentication) to the first bootstrap server that
    answers; raise KafkaAccessError saying what to fix when none does. aiokafka's own
    clients only log why a bootstrap failed, so services call this before starting them."""
    security = security if security is not None else KafkaSecurity()
    options = kafka_options(bootstrap_servers, security)
    options.pop("bootstrap_servers")
    failures: list[BaseException] = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            conn = await create_conn(
                host.strip("[]"), int(port), request_timeout_ms=timeout_ms, **options
            )
        except (OSError, TimeoutError, KafkaError) as exc:
            failures.append(exc)
            continue
        conn.close()
        return
    problem = next((p for e in failures if (p := access_problem(e, bootstrap_servers))), None)
    message = problem or (
        f"could not connect to the Kafka broker at {bootstrap_servers}: check "
        "KAFKA_BOOTSTRAP_SERVERS and the BILLSYNC_KAFKA_* settings"
    )
    log.error("kafka_access_failed", reason=message)
    raise KafkaAccessError(message)


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    context: ssl.SSLContext = create_ssl_context(
        cafile=security.ssl_cafile,
        certfile=security.ssl_certfile,
        keyfile=security.ssl_keyfile,
    )
    context.check_hostname = security.ssl_check_hostname
    return context


def access_problem(
    exc: BaseException, bootstrap_servers: str, security: KafkaSecurity | None = None
) -> str | None:
    """What to fix when a client could not reach or authenticate to the broker (None when
    `exc` is not such a failure). Never includes the password."""
    security = security if security is not None else KafkaSecurity()
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, SaslAuthenticationFailed) for e in chain) or (
        security.uses_sasl and "authentication" in text
    ):
        return (
            f"the Kafka broker at {bootstrap_servers} refused SASL {security.sasl_mechanism} "
            f"authentication as user {security.sasl_username!r}: check "
            "BILLSYNC_KAFKA_SASL_USERNAME, BILLSYNC_KAFKA_SASL_PASSWORD and "
            "BILLSYNC_KAFKA_SASL_MECHANISM"
        )
    if any(isinstance(e, ssl.SSLError) for e in chain) or "certificate" in text:
        return (
            f"the TLS handshake with the Kafka broker at {bootstrap_servers} failed: check "
            "BILLSYNC_KAFKA_SSL_CAFILE (the CA that signed the broker's certificate) and "
            "BILLSYNC_KAFKA_SECURITY_PROTOCOL"
        )
    if isinstance(exc, KafkaConnectionError | KafkaError | OSError):
        return (
            f"could not connect to the Kafka broker at {bootstrap_servers} "
            f"(security protocol {security.security_protocol}): check "
            "KAFKA_BOOTSTRAP_SERVERS and the BILLSYNC_KAFKA_* settings"
        )
    return None
