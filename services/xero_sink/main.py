"""`billsync xero-sink`: delivers dispatch.xero envelopes into Xero.

Settings: `BILLSYNC_XERO_API_BASE` (default https://api.xero.com; the local Xero in the
stack), `BILLSYNC_XERO_TOKEN_URL` (Xero identity's token endpoint), and, for OAuth
credentials whose access tokens expire, `BILLSYNC_SINK_CONTROL_URL` and
`BILLSYNC_SINK_CONTROL_TOKEN`: refreshed tokens are saved through the control plane before
they are used (shared/sinks/token_refresh.py)."""

from __future__ import annotations

import asyncio
import contextlib

from shared.credentials import CredentialCipher
from shared.kafka.producer import make_producer
from shared.lifecycle import run_until_signalled
from shared.logging import configure_logging, get_logger
from shared.observability import ObservabilityServer
from shared.settings import Settings, get_settings
from shared.sinks.leases import KafkaLeases
from shared.sinks.runner import SinkRunner
from shared.sinks.token_refresh import (
    AuthlibExchange,
    ControlPlaneCredentials,
    ControlPlaneLink,
    TokenRefresher,
)

log = get_logger("xero-sink")


async def serve(settings: Settings) -> None:
    from services.xero_sink.client import token_url_from_env
    from services.xero_sink.destination import XeroDestination

    async with contextlib.AsyncExitStack() as stack:
        link = ControlPlaneLink()
        refresher = None
        if link.control_token is not None:
            producer = make_producer(settings.kafka_bootstrap_servers)
            await producer.start()
            stack.push_async_callback(producer.stop)
            leases = KafkaLeases(
                settings.topics.name("sink_leases"), settings.kafka_bootstrap_servers, producer
            )
            await leases.start()
            stack.push_async_callback(leases.stop)
            source = ControlPlaneCredentials(
                settings.topics.name("credentials"),
                settings.kafka_bootstrap_servers,
                CredentialCipher(settings.credentials_key),
                link,
            )
            refresher = TokenRefresher(source, AuthlibExchange(token_url_from_env()), lease=leases)
        destination = XeroDestination(refresher=refresher)
        runner = SinkRunner(settings, destination)
        http = ObservabilityServer("xero-sink", runner.health)
        await runner.start()
        stack.push_async_callback(runner.stop)
        port = await http.start(settings.http_host, settings.http_port)
        stack.push_async_callback(http.stop)
        log.info("sink_http", destination="xero", http_port=port, refresh=refresher is not None)
        await run_until_signalled(runner.run())


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, service="xero-sink")
    asyncio.run(serve(settings))
