"""Sink metrics shared by every destination (labelled by destination family)."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge

from shared.contracts import DispatchEnvelope, RunStatus

RUNS = Counter("billsync_sink_runs_total", "Runs by final status", ["destination", "status"])
RETRIES = Counter(
    "billsync_sink_retries_total", "Delivery retries scheduled", ["destination", "reason"]
)
DEDUPLICATED = Counter(
    "billsync_sink_deduplicated_total",
    "Redelivered envelopes recognised by dispatch id (no provider write)",
    ["destination"],
)
IN_FLIGHT = Gauge(
    "billsync_sink_in_flight", "Envelopes being delivered or awaiting retry", ["destination"]
)
DEAD_LETTERED = Counter(
    "billsync_sink_dead_lettered_total", "Unreadable envelopes", ["destination"]
)
PAUSED = Gauge(
    "billsync_sink_consumer_paused", "1 while backpressure pauses fetching", ["destination"]
)

# ---- per configuration and credential (label sets bounded by the configurations and
# credentials an operator created; never a bill id) --------------------------------------
CONFIG_RUNS = Counter(
    "billsync_sink_configuration_runs_total",
    "Final runs per configuration, by status",
    ["destination", "integration_config_id", "status"],
)
LAST_COMPLETE = Gauge(
    "billsync_sink_configuration_last_complete_timestamp_seconds",
    "When this instance last finished a COMPLETE run for the configuration (Unix time)",
    ["destination", "integration_config_id"],
)
PENDING_RETRIES = Gauge(
    "billsync_sink_configuration_pending_retries",
    "Deliveries waiting for their next attempt, per configuration",
    ["destination", "integration_config_id"],
)
AUTH_FAILURES = Counter(
    "billsync_sink_credential_auth_failures_total",
    "Runs that ended AUTH_FAILED, per credential (empty: the configuration has none)",
    ["destination", "credential_id"],
)
RUNS_BY_TRIGGER = Counter(
    "billsync_sink_runs_by_trigger_total",
    "Final runs by what caused them: GENERATED, APPROVED, REPLAY or RESEND",
    ["destination", "trigger"],
)
QUOTA_REMAINING = Gauge(
    "billsync_sink_provider_quota_remaining",
    "Requests left in the provider's quota window, as the provider last reported it",
    ["destination", "credential_id", "window"],
)
QUOTA_LIMIT = Gauge(
    "billsync_sink_provider_quota_limit",
    "The size of the provider's quota window, as the provider last reported it",
    ["destination", "credential_id", "window"],
)


def record_run(family: str, envelope: DispatchEnvelope, status: RunStatus) -> None:
    """Count one final run in every series that describes it."""
    config = envelope.integration_config
    RUNS.labels(family, status.value).inc()
    CONFIG_RUNS.labels(family, config.id, status.value).inc()
    if status is RunStatus.COMPLETE:
        LAST_COMPLETE.labels(family, config.id).set_to_current_time()
    if status is RunStatus.AUTH_FAILED:
        AUTH_FAILURES.labels(family, config.integration_credentials_id or "").inc()
    trigger = "RESEND" if envelope.resend_of_run_id else envelope.trigger.value
    RUNS_BY_TRIGGER.labels(family, trigger).inc()


async def wait_for_retry(family: str, config_id: str, delay: float) -> None:
    """The pause before a retry, counted as a pending retry of its configuration."""
    gauge = PENDING_RETRIES.labels(family, config_id)
    gauge.inc()
    try:
        await asyncio.sleep(delay)
    finally:
        gauge.dec()


def report_quota(
    destination: str, credential_id: str, window: str, remaining: float, limit: float | None
) -> None:
    """For destinations whose provider reports its quota on every answer (Xero's daily and
    minute limits, Salesforce's daily API requests): `window` names the quota ("day",
    "minute"), a fixed small set per destination."""
    QUOTA_REMAINING.labels(destination, credential_id, window).set(remaining)
    if limit is not None:
        QUOTA_LIMIT.labels(destination, credential_id, window).set(limit)


INTERNAL_ERRORS = Counter(
    "billsync_sink_internal_errors_total",
    "Deliveries ended by a bug in billsync (unclassified exceptions), by exception type",
    ["destination", "exception"],
)
