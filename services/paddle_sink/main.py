"""`billsync paddle-sink`: delivers dispatch.paddle envelopes into Paddle (live and
sandbox).

`BILLSYNC_PADDLE_RATE_LIMIT` ("240/60": requests per seconds, Paddle's per-IP limit by
default) is this process's whole Paddle budget: lower it when another application shares
the sink's IP address with Paddle; benchmarks use a short window."""

from __future__ import annotations

import asyncio
import os

from shared.logging import configure_logging
from shared.settings import get_settings

RATE_LIMIT_ENV = "BILLSYNC_PADDLE_RATE_LIMIT"


def parse_rate_limit(text: str) -> tuple[int, float]:
    """ "240/60" -> (240, 60.0): requests per window of seconds."""
    count, _, seconds = text.partition("/")
    try:
        limit, window = int(count), float(seconds or "60")
    except ValueError as exc:
        raise SystemExit(
            f"{RATE_LIMIT_ENV}={text!r}: expected REQUESTS/SECONDS, e.g. 240/60"
        ) from exc
    if limit < 1 or window <= 0:
        raise SystemExit(f"{RATE_LIMIT_ENV}={text!r}: both numbers must be positive")
    return limit, window


def main() -> None:
    from services.paddle_sink.destination import PaddleDestination, paddle_limits
    from shared.sinks.service import serve_sink

    settings = get_settings()
    configure_logging(settings.log_level, service="paddle-sink")
    limits = paddle_limits(*parse_rate_limit(os.environ.get(RATE_LIMIT_ENV, "240/60")))
    asyncio.run(serve_sink(settings, PaddleDestination(limits=limits)))
