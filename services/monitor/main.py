"""Run the monitor until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

from services.monitor.service import MonitorService
from shared.logging import configure_logging
from shared.settings import get_settings


async def run_monitor() -> None:
    service = MonitorService(get_settings())
    await service.start()
    task = asyncio.create_task(service.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.request_stop)
    try:
        await task
    finally:
        await service.stop()


def main() -> None:
    configure_logging(get_settings().log_level, service="monitor")
    asyncio.run(run_monitor())
