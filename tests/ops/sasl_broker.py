"""A second, throwaway Kafka broker with a SASL_SSL listener, for the TLS + SASL test.

Its certificate is signed by a CA made at test time (the `cryptography` package); SCRAM
credentials are written at format time (KRaft). It uses the jars of deploy/kafka (resolved
with Maven the same way deploy/kafka/scripts/kafka.sh does), its own ports and its own
data directory, a small heap, and is stopped at the end."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
KAFKA = ROOT / "deploy" / "kafka"
LIB = KAFKA / "lib"


@dataclass(frozen=True)
class SaslBroker:
    bootstrap: str  # the SASL_SSL listener
    cafile: Path
    username: str
    password: str
    mechanism: str
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def resolve_jars() -> None:
    """The broker jars, resolved once (as deploy/kafka/scripts/kafka.sh does)."""
    if (LIB / ".resolved").exists():
        return
    LIB.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(KAFKA / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={LIB}", "-DincludeScope=runtime"],
        check=True,
    )  # fmt: skip
    (LIB / ".resolved").touch()


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_certificates(folder: Path) -> tuple[Path, Path]:
    """A throwaway CA and a broker certificate for 127.0.0.1/localhost signed by it.
    Returns (CA certificate, broker key + certificate chain) as PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "billsync test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    keystore = folder / "broker.pem"  # Kafka's PEM keystore: private key, then the chain
    keystore.write_bytes(
        _pem(key)
        + cert.public_bytes(serialization.Encoding.PEM)
        + ca.public_bytes(serialization.Encoding.PEM)
    )
    return ca_file, keystore


SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


def _properties(data: Path, keystore: Path, sasl: int, internal: int, controller: int) -> str:
    return f"""
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=SASL_SSL://127.0.0.1:{sasl},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=SASL_SSL://127.0.0.1:{sasl},INTERNAL://127.0.0.1:{internal}
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={SCRAM_LOGIN}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={SCRAM_LOGIN}
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
log.dirs={data}/logs
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.dedupe.buffer.size=2097152
log.cleaner.threads=1
"""


@contextlib.contextmanager
def sasl_ssl_broker(
    folder: Path,
    username: str = "billsync",
    password: str = "s3cret-for-tests",
    mechanism: str = "SCRAM-SHA-512",
    ready_timeout: float = 120.0,
) -> Iterator[SaslBroker]:
    resolve_jars()
    ca_file, keystore = make_certificates(folder)
    sasl, internal, controller = free_port(), free_port(), free_port()
    data = folder / "data"
    data.mkdir()
    props = folder / "server.properties"
    props.write_text(_properties(data, keystore, sasl, internal, controller))
    java = ["java", "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true"]
    java += [f"-Dlog4j.configuration=file:{KAFKA / 'log4j.properties'}", "-cp", f"{LIB}/*"]
    subprocess.run(
        [*java, "kafka.tools.StorageTool", "format", "-t", "bVJtwZ3QQ1-vHLBRyUHoxw",
         "-c", str(props), "--add-scram", f"{mechanism}=[name={username},password={password}]"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    log = folder / "kafka.log"
    with log.open("wb") as out:
        process = subprocess.Popen([*java, "kafka.Kafka", str(props)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + ready_timeout
        while "Kafka Server started" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"SASL_SSL broker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)  # polling the broker's log for its readiness line
        yield SaslBroker(f"127.0.0.1:{sasl}", ca_file, username, password, mechanism, log)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def security_env(broker: SaslBroker, password: str | None = None) -> dict[str, str]:
    """The BILLSYNC_KAFKA_* settings that reach this broker (optionally a wrong password)."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "BILLSYNC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "BILLSYNC_KAFKA_SSL_CAFILE": str(broker.cafile),
        "BILLSYNC_KAFKA_SASL_MECHANISM": broker.mechanism,
        "BILLSYNC_KAFKA_SASL_USERNAME": broker.username,
        "BILLSYNC_KAFKA_SASL_PASSWORD": password if password is not None else broker.password,
    }
