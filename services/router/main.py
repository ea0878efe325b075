"""`billsync router`: run until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

from services.router.service import RouterService
from shared.logging import configure_logging
from shared.settings import get_settings


async def run_router() -> None:
    settings = get_settings()
    service = RouterService(settings)
    await service.start()
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(service.run())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        await service.stop()


def main() -> None:
    configure_logging(get_settings().log_level, service="router")
    asyncio.run(run_router())
