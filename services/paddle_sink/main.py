"""`billsync paddle-sink`: delivers dispatch.paddle envelopes into Paddle (live and
sandbox)."""

from __future__ import annotations

import asyncio

from shared.logging import configure_logging
from shared.settings import get_settings


def main() -> None:
    from services.paddle_sink.destination import PaddleDestination
    from services.paddle_sink.service import serve

    settings = get_settings()
    configure_logging(settings.log_level, service="paddle-sink")
    asyncio.run(serve(settings, PaddleDestination()))
