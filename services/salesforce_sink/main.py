"""`billsync salesforce-sink`: delivers dispatch.salesforce envelopes into Salesforce."""

from __future__ import annotations

import asyncio

from shared.logging import configure_logging
from shared.settings import get_settings
from shared.sinks.service import serve_sink


def main() -> None:
    from services.salesforce_sink.destination import SalesforceDestination

    settings = get_settings()
    configure_logging(settings.log_level, service="salesforce-sink")
    asyncio.run(serve_sink(settings, SalesforceDestination()))
