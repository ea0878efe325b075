"""Sink metrics shared by every destination (labelled by destination family)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
INTERNAL_ERRORS = Counter(
    "billsync_sink_internal_errors_total",
    "Deliveries ended by a bug in billsync (unclassified exceptions), by exception type",
    ["destination", "exception"],
)
