"""Table definitions (SQLAlchemy Core). Names are stable: they are the on-disk schema."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from shared.store.types import UTCDateTime

metadata = MetaData()
ID = 200  # ids are at most 200 characters in every contract

# The latest state of each run (one row per run id; status transitions overwrite it).
runs = Table(
    "integration_runs",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("entity_id", String(ID), nullable=False),
    Column("entity_version", Integer),
    Column("integration_config_id", String(ID), nullable=False),
    Column("integration_config_version", Integer),
    Column("destination", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    # shared.store.runs.rank: a redelivered older record never regresses a row.
    Column("rank", BigInteger, nullable=False),
    Column("dt_started", UTCDateTime, nullable=False),
    Column("dt_completed", UTCDateTime),
    Column("external_id", String(ID)),
    Column("url", Text),
    Column("error", Text),
    Column("parent_integration_run_id", String(ID)),
    Column("replayed_from_run_id", String(ID)),
    Column("dispatch_id", String(ID)),
    Column("trigger", String(32)),
    Column("attempt", Integer, nullable=False),
    Column("account_id", String(ID)),
    Column("source", String(600)),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_runs_started", "dt_started", "id"),
    Index("ix_runs_config_started", "integration_config_id", "dt_started"),
    Index("ix_runs_entity_started", "entity_id", "dt_started"),
    Index("ix_runs_external", "external_id"),
)

events = Table(
    "integration_events",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("event_type", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("integration_config_id", String(ID), nullable=False),
    Column("integration_run_id", String(ID)),
    Column("entity_id", String(ID)),
    Column("destination", String(32)),
    Column("dt_created", UTCDateTime, nullable=False),
    Column("actioned", Boolean, nullable=False, default=False),
    Column("dt_actioned", UTCDateTime),
    Index("ix_events_created", "dt_created", "id"),
    Index("ix_events_config", "integration_config_id", "dt_created"),
)

# The destination invoice's status, from verified provider webhooks. Keyed by bill and
# configuration when the webhook names them (invoice metadata), else by the external id.
external_statuses = Table(
    "external_invoice_statuses",
    metadata,
    Column("key", String(2 * ID + 8), primary_key=True),
    Column("entity_id", String(ID)),
    Column("integration_config_id", String(ID)),
    Column("external_id", String(ID), nullable=False),
    Column("destination", String(32)),
    Column("status", String(32), nullable=False),
    Column("provider_event_id", String(ID), nullable=False),
    Column("provider_event_type", String(100), nullable=False),
    Column("dt_received", UTCDateTime, nullable=False),
    Index("ix_external_external_id", "external_id"),
    Index("ix_external_entity", "entity_id", "integration_config_id"),
)

# Who changed a configuration's state and why (enable/disable reasons, credential changes).
config_changes = Table(
    "config_changes",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("integration_config_id", String(ID), nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("reason", Text),
    Column("dt_changed", UTCDateTime, nullable=False),
    Index("ix_changes_config", "integration_config_id", "seq"),
)
