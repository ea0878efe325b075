"""Webhook endpoint metrics (Prometheus)."""

from __future__ import annotations

from prometheus_client import Counter

RECEIVED = Counter(
    "billsync_webhooks_received_total",
    "Inbound provider webhook requests, by provider and outcome",
    ["provider", "outcome"],
)
