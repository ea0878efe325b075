"""Run the webhook service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

from services.webhooks.service import WebhookService
from shared.logging import configure_logging
from shared.settings import get_settings


async def run_webhooks() -> None:
    service = WebhookService(get_settings())
    await service.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await service.stop()


def main() -> None:
    configure_logging(get_settings().log_level, service="webhooks")
    asyncio.run(run_webhooks())
