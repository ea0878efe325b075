"""`billsync router`: run until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from services.router.service import RouterService
from shared.lifecycle import run_until_signalled
from shared.logging import configure_logging
from shared.settings import get_settings


async def run_router() -> None:
    settings = get_settings()
    service = RouterService(settings)
    await service.start()
    try:
        await run_until_signalled(service.run())
    finally:
        await service.stop()


def main() -> None:
    configure_logging(get_settings().log_level, service="router")
    asyncio.run(run_router())
