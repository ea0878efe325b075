"""The Paddle sink as a service: the framework's runner, with the runner's external
mappings handed to the destination.

Paddle needs more from the external mappings than the one customer id the framework
resolves (the address and business of the account, the Paddle product of each line), so
the destination reads the runner's mappings (`runner.state.mappings_for`). The framework
has no hook for that yet: `paddle_runner` binds it, and `serve` is
`shared.sinks.service.serve_sink` around that runner."""

from __future__ import annotations

from shared.credentials import CredentialCipher
from shared.lifecycle import run_until_signalled
from shared.logging import get_logger
from shared.observability import ObservabilityServer
from shared.settings import Settings
from shared.sinks.options import SinkOptions
from shared.sinks.runner import SinkRunner

from .destination import PaddleDestination

log = get_logger("sink")


def paddle_runner(
    settings: Settings,
    destination: PaddleDestination,
    options: SinkOptions | None = None,
    cipher: CredentialCipher | None = None,
) -> SinkRunner:
    runner = SinkRunner(settings, destination, options, cipher)
    destination.use_mappings(runner.state.mappings_for)
    return runner


async def serve(
    settings: Settings, destination: PaddleDestination, options: SinkOptions | None = None
) -> None:
    runner = paddle_runner(settings, destination, options)
    http = ObservabilityServer(f"{destination.family}-sink", runner.health)
    await runner.start()
    port = await http.start(settings.http_host, settings.http_port)
    log.info("sink_http", destination=destination.family, http_port=port)
    try:
        await run_until_signalled(runner.run())
    finally:
        await http.stop()
        await runner.stop()
