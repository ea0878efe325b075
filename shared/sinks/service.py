"""Running a sink as a service: the runner, /metrics and /health, signal handling."""

from __future__ import annotations

from typing import Any

from shared.lifecycle import run_until_signalled
from shared.logging import get_logger
from shared.observability import ObservabilityServer
from shared.settings import Settings
from shared.sinks.destination import SinkDestination
from shared.sinks.options import SinkOptions
from shared.sinks.runner import SinkRunner

log = get_logger("sink")


async def serve_sink(
    settings: Settings, destination: SinkDestination[Any], options: SinkOptions | None = None
) -> None:
    runner = SinkRunner(settings, destination, options)
    http = ObservabilityServer(f"{destination.family}-sink", runner.health)
    await runner.start()
    port = await http.start(settings.http_host, settings.http_port)
    log.info("sink_http", destination=destination.family, http_port=port)
    try:
        await run_until_signalled(runner.run())
    finally:
        await http.stop()
        await runner.stop()
