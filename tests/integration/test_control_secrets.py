"""Secrets stay secret: a full run of the real `python -m services.control` process (every
credential type, rotation, OAuth connects, refusals, run history) while every API response
and every line the process logs is scanned for the secret values used."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest

from services.control.oauth_state import SESSION_COOKIE
from shared.contracts import IntegrationEvent, IntegrationRun
from shared.credentials import generate_key
from shared.kafka.topics import ensure_topics
from shared.settings import Settings
from tests.support.control import (
    STRIPE_ACCESS,
    XERO_ACCESS,
    XERO_REFRESH,
    Api,
    ControlPlaneHandle,
    FakeProvider,
    fake_oauth_provider,
)
from tests.support.kafka import publish, read_topic
from tests.support.services import ROOT, service_env

pytestmark = pytest.mark.kafka

SECRETS = {
    "admin": "adm-token-secrets-test-7f3a9c1e",
    "read": "read-token-secrets-test-2b8d4e6f",
    "stripe": "sk_live_secrets_test_51Habc",
    "stripe_rotated": "rk_live_secrets_test_rotated_99",
    "whsec": "whsec_secrets_test_0123",
    "paddle": "pdl_sdbx_apikey_secrets_test_abc",
    "sf_key": "-----BEGIN PRIVATE KEY-----MIIsecretstest-----END PRIVATE KEY-----",
    "sf_secret": "sf-secret-secrets-test-xyz",
    "sf_refresh": "sf-refresh-secrets-test-xyz",
    "xero_secret": "xero-client-secret-secrets-test",
    "xero_access": "xero-access-secrets-test",
    "platform": "sk_test_platform_secrets_test_key",
    "xero_app_secret": "xero-app-secret-secrets-test",
    "oauth_state_secret": "state-signing-secret-secrets-test",
    "oauth_access_stripe": STRIPE_ACCESS,
    "oauth_access_xero": XERO_ACCESS,
    "oauth_refresh_xero": XERO_REFRESH,
    "wrong_token": "not-a-token-but-secret-looking-123",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            assert proc.poll() is None, "the control plane exited during start"
            try:
                async with http.get(url + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the control plane did not become healthy")


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    async with fake_oauth_provider() as fake:
        yield fake


@pytest.fixture
async def process(
    settings: Settings, provider: FakeProvider, tmp_path: Path
) -> AsyncIterator[tuple[Api, subprocess.Popen[bytes], Path]]:
    await ensure_topics(settings)
    port = _free_port()
    key = generate_key()
    SECRETS["credentials_key"] = key
    log = tmp_path / "control.log"
    env = service_env(
        settings,
        BILLSYNC_LOG_LEVEL="DEBUG",
        BILLSYNC_CREDENTIALS_KEY=key,
        BILLSYNC_CONTROL_PORT=str(port),
        BILLSYNC_CONTROL_ADMIN_TOKENS=json.dumps([SECRETS["admin"]]),
        BILLSYNC_CONTROL_READ_TOKENS=json.dumps([SECRETS["read"]]),
        BILLSYNC_CONTROL_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'control.db'}",
        BILLSYNC_CONTROL_OAUTH_STATE_SECRET=SECRETS["oauth_state_secret"],
        BILLSYNC_CONTROL_STRIPE_CONNECT_CLIENT_ID="ca_secrets_test",
        BILLSYNC_CONTROL_STRIPE_CONNECT_SECRET_KEY=SECRETS["platform"],
        BILLSYNC_CONTROL_STRIPE_CONNECT_TOKEN_URL=f"{provider.base_url}/stripe/token",
        BILLSYNC_CONTROL_XERO_CLIENT_ID="xero-app",
        BILLSYNC_CONTROL_XERO_CLIENT_SECRET=SECRETS["xero_app_secret"],
        BILLSYNC_CONTROL_XERO_TOKEN_URL=f"{provider.base_url}/xero/token",
        BILLSYNC_CONTROL_XERO_CONNECTIONS_URL=f"{provider.base_url}/xero/connections",
        # Attaching verifies the key: a local server that refuses it, never api.stripe.com.
        BILLSYNC_STRIPE_API_BASE=provider.base_url,
        # Every library's lines too, so the JSON check below covers them.
        BILLSYNC_LOG_LEVELS="sqlalchemy.engine=INFO,aiokafka=DEBUG,aiohttp=DEBUG,stripe=DEBUG",
    )
    with log.open("wb") as out:
        proc = _spawn(env, out)
        try:
            base = f"http://127.0.0.1:{port}"
            await _wait_healthy(base, proc)
            handle = ControlPlaneHandle(base, SECRETS["admin"], SECRETS["read"], key, "")
            async with aiohttp.ClientSession() as session:
                yield Api(handle, session), proc, log
        finally:
            _stop(proc)


def _spawn(env: dict[str, str], out: IO[bytes]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "services.control"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


CREDENTIALS: list[dict[str, Any]] = [
    {"type": "STRIPE", "id": "s", "apiKey": SECRETS["stripe"], "webhookSecret": SECRETS["whsec"]},
    {"type": "PADDLE", "id": "p", "apiKey": SECRETS["paddle"]},
    {
        "type": "SALESFORCE",
        "id": "sf",
        "clientId": "c",
        "privateKey": SECRETS["sf_key"],
        "username": "u@example.com",
    },
    {
        "type": "SALESFORCE",
        "id": "sf2",
        "grantType": "REFRESH_TOKEN",
        "clientId": "c",
        "clientSecret": SECRETS["sf_secret"],
        "refreshToken": SECRETS["sf_refresh"],
    },
    {
        "type": "XERO",
        "id": "x",
        "clientId": "c",
        "clientSecret": SECRETS["xero_secret"],
        "accessToken": SECRETS["xero_access"],
    },
]


async def _full_run(api: Api, settings: Settings) -> None:
    for body in CREDENTIALS:
        assert (await api.call("POST", "/integrationcredentials", json=body))[0] == 201
    for cid, dest, cred in [
        ("c-s", "STRIPE", "s"),
        ("c-p", "PADDLE_SANDBOX", "p"),
        ("c-sf", "SALESFORCE", "sf"),
        ("c-x", "XERO", "x"),
        ("c-st", "STRIPE_TEST", None),
    ]:
        body = {"id": cid, "destination": dest, "integrationCredentialsId": cred}
        assert (await api.call("POST", "/integrationconfigs", json=body))[0] == 201
    await api.call("PUT", "/integrationcredentials/s", json={"apiKey": SECRETS["stripe_rotated"]})
    await api.call(
        "POST", "/integrationconfigs/c-s/credential", json={"integrationCredentialsId": "s"}
    )
    # Refusals that carry secrets in the request must not echo them.
    await api.call(
        "POST",
        "/integrationcredentials",
        json={
            "type": "STRIPE",
            "apiKey": SECRETS["stripe"],
            "connectedAccountId": SECRETS["paddle"],
        },
    )
    await api.call(
        "POST",
        "/integrationcredentials",
        json={"type": "PADDLE", "apiKey": SECRETS["paddle"], "apiKye": SECRETS["stripe"]},
    )
    await api.call(
        "POST", "/integrationcredentials", json={"type": "NOPE", "apiKey": SECRETS["stripe"]}
    )
    await api.call(
        "PUT", "/integrationcredentials/s", json={"type": "PADDLE", "apiKey": SECRETS["paddle"]}
    )
    await api.call(
        "POST", "/integrationcredentials", data=f'{{"apiKey": "{SECRETS["stripe"]}'.encode()
    )
    await api.call(
        "GET",
        "/integrationconfigs",
        as_=None,
        headers={"Authorization": f"Bearer {SECRETS['wrong_token']}"},
    )
    await api.call("POST", "/integrationconfigs", as_="read", json={})
    # OAuth connects (the fake returns access and refresh tokens).
    for provider, cid in (("stripe", "c-st"), ("xero", "c-x")):
        status, start = await api.call("GET", f"/oauth/{provider}/start?configId={cid}")
        assert status == 200
        async with api.session.get(start["authorizeUrl"], allow_redirects=False) as begun:
            state = begun.headers["Location"].split("state=")[1].split("&")[0]
            cookie = begun.cookies[SESSION_COOKIE].value
        status, _ = await api.call(
            "GET",
            f"/oauth/{provider}/callback?code=good-code&state={state}",
            as_=None,
            headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
        )
        assert status == 200
    # Run history with errors and events.
    now = datetime.now(UTC)
    records = [
        IntegrationRun(
            id="r1",
            entity_id="b1",
            integration_config_id="c-s",
            destination="STRIPE",
            status="AUTH_FAILED",
            dt_started=now,
            error="Invalid API key provided",
        ),
        IntegrationEvent(
            id="e1",
            event_type="integration.authentication.error",
            message="Stripe refused the key",
            integration_config_id="c-s",
            dt_created=now,
        ),
    ]
    await publish(
        settings.kafka_bootstrap_servers,
        settings.topics.name("integration_results"),
        [(b"r1", r.to_bytes()) for r in records],
    )
    for _ in range(100):
        if (await api.call("GET", "/integrationevents/e1"))[0] == 200:
            break
        await asyncio.sleep(0.1)
    for path in (
        "/integrationcredentials",
        "/integrationconfigs",
        "/integrationruns",
        "/integrationevents",
        "/externalmappings",
        "/openapi.json",
        "/integrationconfigs/c-x/connection",
        "/integrationconfigs/c-s/changes",
    ):
        assert (await api.call("GET", path, as_="read"))[0] == 200
    for body in CREDENTIALS:
        assert (await api.call("GET", f"/integrationcredentials/{body['id']}"))[0] == 200
    assert (await api.call("GET", "/integrationcredentials/oauth-xero-c-x"))[0] == 200


async def test_no_secret_in_any_response_or_log_line(
    process: tuple[Api, subprocess.Popen[bytes], Path], settings: Settings
) -> None:
    api, proc, log = process
    await _full_run(api, settings)
    responses = "\n".join(api.responses)
    for name, value in SECRETS.items():
        assert value not in responses, f"{name} leaked in an API response"
    records = await read_topic(
        settings.kafka_bootstrap_servers, settings.topics.name("credentials")
    )
    at_rest = b"\n".join(r.value or b"" for r in records).decode()
    for name, value in SECRETS.items():
        if name != "credentials_key":
            assert value not in at_rest, f"{name} stored in plain text"
    await asyncio.to_thread(_stop, proc)  # every line flushed, shutdown included
    assert proc.returncode == 0
    text = log.read_text()
    for expected in ("control_started", "credential_written", "oauth_connected", "control_stopped"):
        assert f'"event": "{expected}"' in text
    loggers = set()
    for line in text.splitlines():
        for name, value in SECRETS.items():
            assert value not in line, f"{name} leaked in a log line: {line[:200]}"
        # Every line the service writes, stderr included, is one JSON object.
        entry = json.loads(line)
        assert isinstance(entry, dict) and "level" in entry and "event" in entry, line[:200]
        loggers.add(entry.get("logger"))
    # The libraries' stdlib logging came out as JSON too (SQL statements, the Kafka client).
    assert "sqlalchemy.engine.Engine" in loggers
    assert any(str(name).startswith("aiokafka") for name in loggers)
