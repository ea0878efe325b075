"""Router metrics (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "billsync_router_events_consumed_total", "Input events consumed", ["topic"]
)
DISPATCHES = Counter(
    "billsync_router_dispatches_total", "Dispatch envelopes produced", ["destination"]
)
FILTERED = Counter(
    "billsync_router_bills_filtered_total",
    "Bill/configuration pairs not sent, by reason",
    ["reason"],
)
UNMATCHED = Counter("billsync_router_bills_unmatched_total", "Bills that matched no configuration")
DEAD_LETTERED = Counter(
    "billsync_router_dead_lettered_total",
    "Malformed events sent to the dead-letter topic",
    ["kind"],
)
ROUTING_LATENCY = Histogram(
    "billsync_router_routing_latency_seconds",
    "From the input record's timestamp to the broker's acknowledgement of its dispatches",
    buckets=(0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5),
)
CONFIGS_LOADED = Gauge("billsync_router_configurations", "Configurations known", ["enabled"])
CONFIGS_REJECTED = Counter(
    "billsync_router_configurations_rejected_total",
    "Configuration records in the topic that failed validation",
)
