"""The control plane's data-access layer: run history, events, external invoice statuses.

One async SQLAlchemy engine from a URL: SQLite by default (`sqlite+aiosqlite:///path`),
PostgreSQL with `postgresql+asyncpg://...`. Tables are created on start."""

from shared.store.models import (
    ConfigChange,
    EventQuery,
    ExternalStatusRow,
    Page,
    RunQuery,
    StoredEvent,
    StoredRun,
)
from shared.store.store import IngestCounts, Store

__all__ = [
    "ConfigChange",
    "EventQuery",
    "ExternalStatusRow",
    "IngestCounts",
    "Page",
    "RunQuery",
    "Store",
    "StoredEvent",
    "StoredRun",
]
