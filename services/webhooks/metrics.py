"""Webhook endpoint metrics (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter

RECEIVED = Counter(
    "billsync_webhooks_received_total",
    "Inbound provider webhook requests, by provider and outcome",
    ["provider", "outcome"],
)
MAP_UPDATES = Counter(
    "billsync_webhooks_invoice_map_updates_total",
    "Invoice-map records moved to a locked state by a webhook",
    ["state"],
)
