"""`billsync stripe-sink`: delivers dispatch.stripe envelopes into Stripe (live and test)."""

from __future__ import annotations

import asyncio

from shared.logging import configure_logging
from shared.settings import get_settings
from shared.sinks.service import serve_sink


def main() -> None:
    from services.stripe_sink.destination import StripeDestination

    settings = get_settings()
    configure_logging(settings.log_level, service="stripe-sink")
    asyncio.run(serve_sink(settings, StripeDestination()))
