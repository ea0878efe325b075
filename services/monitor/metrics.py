"""Monitor metrics (Prometheus)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge

RESULTS_CONSUMED = Counter(
    "billsync_monitor_results_consumed_total", "integration-results records read", ["kind"]
)
SUCCESSIVE_ERRORS = Gauge(
    "billsync_monitor_successive_errors",
    "Successive error events per configuration (reset by a complete run or re-enabling)",
    ["integration_config_id"],
)
CONFIG_ENABLED = Gauge(
    "billsync_monitor_configuration_enabled",
    "1 while the configuration is enabled, 0 while disabled (auto-disabled or by hand)",
    ["integration_config_id"],
)
ERROR_THRESHOLD = Gauge(
    "billsync_monitor_error_threshold",
    "Successive errors at which the monitor disables a configuration (its setting)",
)
CONFIGS_DISABLED = Counter(
    "billsync_monitor_configurations_disabled_total",
    "Configurations disabled automatically after successive errors",
)
DISABLE_FAILURES = Counter(
    "billsync_monitor_disable_failures_total", "Failed calls to the control plane's disable"
)
NOTIFICATIONS_SENT = Counter(
    "billsync_monitor_notifications_sent_total", "Disable notification emails sent"
)
NOTIFICATION_FAILURES = Counter(
    "billsync_monitor_notification_failures_total",
    "Disable notification emails not sent, by reason",
    ["reason"],
)
WEBHOOKS = Counter(
    "billsync_monitor_provider_error_webhooks_total",
    "Outbound invoice.billing_provider_error deliveries, by outcome",
    ["outcome"],
)


def show_enabled(config_id: str, enabled: bool | None) -> None:
    """Track a configuration's enabled flag (None: the configuration was deleted)."""
    if enabled is None:
        with contextlib.suppress(KeyError):  # never seen enabled or disabled
            CONFIG_ENABLED.remove(config_id)
        return
    CONFIG_ENABLED.labels(config_id).set(1 if enabled else 0)
