"""Every PromQL expression of the dashboards and alert rules, asked of a real Prometheus
scraping the real router, Stripe sink, monitor and control plane (subprocesses, each with
its own /metrics) while bills flow through them: each expression is valid, names metrics and
labels that exist, and returns series where the traffic makes data.

The traffic: bills for two configurations, one whose credential the local Stripe refuses
(AUTH_FAILED, successive errors, then disabled by the monitor through the control plane),
a few 429s (retries), a malformed bill (dead
letter), sent in two waves so counters move between scrapes (increase() and rate() of a
series need two samples)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from shared.settings import Settings
from tests.ops.prometheus_server import PrometheusApi, prometheus
from tests.ops.promql import Expression, dashboard_expressions, rule_expressions, variable_queries
from tests.ops.sasl_broker import free_port
from tests.support.builders import account, bill, config, line
from tests.support.kafka import publish
from tests.support.services import start_service
from tests.support.stripe_stack import StripeStack, stripe_stack

pytestmark = pytest.mark.kafka

GOOD, BAD = "cfg-good", "cfg-bad"
DRILL_DOWN = [  # the per-configuration dashboard, for each configuration
    {"config": GOOD, "destination": "stripe"},
    {"config": BAD, "destination": "stripe"},
]
# Expressions that must answer but have no data with this traffic: no provider here
# reports a quota, and alerts whose condition the traffic does not meet.
MAY_BE_EMPTY = {
    "configuration.json: Quota remaining A",
    "rule BillsyncConsumerLagging",
    "rule BillsyncConsumerStalled",
    "rule BillsyncRateLimitedSustained",
    "rule BillsyncDailyQuotaNearlySpent",
    "rule BillsyncServiceDown",
}
# Metric names that the traffic cannot create (documented in docs/metrics.md).
NO_SERIES_HERE = {"billsync_sink_provider_quota_remaining", "billsync_sink_provider_quota_limit"}


def bills(prefix: str, n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        acc = f"acc-{i % 5 + 1}"
        b = bill(f"{prefix}-{i}", acc, embed=account(acc), lines=[line(f"{prefix}{i}-1")])
        out.append((b.id.encode(), b.to_bytes()))
    return out


@contextlib.contextmanager
def services(stack: StripeStack, ports: dict[str, int], folder: Path) -> Iterator[None]:
    env = {
        "BILLSYNC_STRIPE_API_BASE": stack.url,
        "BILLSYNC_CREDENTIALS_KEY": stack.key,
        "BILLSYNC_SINK_RETRY_BASE_DELAY": "0.05",
        "BILLSYNC_SINK_RETRY_MAX_DELAY": "0.3",
        # Six: the bad configuration's 4 errors of the first wave leave it enabled, so the
        # router dispatches the whole second wave; its 6th error disables it.
        "BILLSYNC_MONITOR_ERROR_THRESHOLD": "6",
        "BILLSYNC_CONTROL_URL": f"http://127.0.0.1:{ports['control']}",
        "BILLSYNC_CONTROL_HOST": "127.0.0.1",
        "BILLSYNC_CONTROL_PORT": str(ports["control"]),
        "BILLSYNC_CONTROL_ADMIN_TOKENS": '["ops-test-admin-token"]',
        "BILLSYNC_MONITOR_ADMIN_TOKEN": "ops-test-admin-token",
        "BILLSYNC_CONTROL_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'control.db'}",
    }
    modules = {
        "control": "services.control",
        "router": "services.router",
        "stripe-sink": "services.stripe_sink",
        "monitor": "services.monitor",
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, module in modules.items():
            extra = {**env, "BILLSYNC_HTTP_PORT": str(ports[name])}
            procs.append(start_service(module, stack.settings, **extra))
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_healthy(ports: dict[str, int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        for name, port in ports.items():
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                        if resp.status == 200:
                            break
                assert time.monotonic() < deadline, f"{name} not healthy after {timeout}s"
                await asyncio.sleep(0.2)


async def wait_for_value(api: PrometheusApi, expr: str, minimum: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = await api.series(expr)
        if result and float(result[0]["value"][1]) >= minimum:
            return
        assert time.monotonic() < deadline, f"{expr} did not reach {minimum}: {result}"
        await asyncio.sleep(0.5)


def instances(expressions: list[Expression]) -> list[tuple[str, Expression, str]]:
    """(where, expression, query) with the dashboard variables filled in."""
    out = []
    for e in expressions:
        if "$" in e.expr.replace("${datasource}", ""):
            for values in DRILL_DOWN:
                out.append((f"{e.where} [{values['config']}]", e, e.with_variables(values)))
        else:
            out.append((e.where, e, e.expr))
    return out


async def test_every_dashboard_and_rule_expression_on_a_live_stack(
    settings: Settings, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in ("control", "router", "stripe-sink", "monitor")}
    async with stripe_stack(settings, keys=("sk_test_good",), customers=5) as stack:
        await stack.credential("cred-good", "sk_test_good")
        await stack.credential("cred-bad", "sk_test_revoked")
        await stack.configs(
            config(GOOD, "STRIPE_TEST", integrationCredentialsId="cred-good"),
            config(BAD, "STRIPE_TEST", integrationCredentialsId="cred-bad"),
        )
        stack.fake.configure(
            faults={"rules": [{"path_prefix": "/v1/invoices", "status": 429, "count": 3}]}
        )
        bootstrap, topic = settings.kafka_bootstrap_servers, settings.topics.name("bill_generated")
        targets = {f"billsync-{name}": f"127.0.0.1:{port}" for name, port in ports.items()}
        with services(stack, ports, tmp_path), prometheus(tmp_path, targets) as url:
            api = PrometheusApi(url)
            await wait_healthy(ports)
            await publish(bootstrap, topic, bills("wave1", 4))
            await stack.wait_final_runs(8)
            # Scraped once with the first wave's counters, so the second wave moves them.
            await wait_for_value(api, "sum(billsync_sink_configuration_runs_total)", 8, 30)
            await wait_for_value(api, "sum(billsync_monitor_results_consumed_total)", 8, 30)
            await publish(bootstrap, topic, [*bills("wave2", 4), (b"bad", b"not json")])
            await stack.wait_final_runs(16)
            await wait_for_value(api, "sum(billsync_sink_configuration_runs_total)", 16, 30)
            await wait_for_value(api, "sum(billsync_dead_letters_total)", 1, 30)
            # Every consuming service reports the lag of its own group.
            prefix = settings.consumer_group_prefix
            groups = {f"{prefix}-{g}" for g in ("router", "stripe-sink", "monitor")}
            groups.add(f"{prefix}-control-ingest")
            await wait_for_value(
                api, "count(count by (group) (billsync_kafka_consumer_lag))", 4, 30
            )
            reported = await api.series("count by (group) (billsync_kafka_consumer_lag)")
            assert {s["metric"]["group"] for s in reported} == groups
            await wait_for_value(api, "sum(billsync_monitor_configurations_disabled_total)", 1, 30)
            await check_expressions(api)


async def check_expressions(api: PrometheusApi) -> None:
    checks = instances(dashboard_expressions() + variable_queries() + rule_expressions())
    # Every metric name the expressions use has series (a misspelt name would have none).
    names = {n for _, e, _ in checks for n in _metric_names(e.expr)} - NO_SERIES_HERE
    missing_metrics = [n for n in sorted(names) if not await api.series(f"count({n})")]
    assert not missing_metrics, f"no series for {missing_metrics}"
    # Each expression answers; those expected to have data have it (a drill-down panel
    # for at least one of the configurations) and their series carry the legend's labels.
    deadline = time.monotonic() + 30
    while True:
        with_data: set[str] = set()
        unlabelled: list[str] = []
        for where, e, query in checks:
            result = await api.series(query)  # raises on a query Prometheus refuses
            if result:
                with_data.add(e.where)
            for series in result:
                if not e.legend_labels <= set(series["metric"]):
                    unlabelled.append(f"{where}: {series['metric']} lacks {e.legend_labels}")
        assert not unlabelled, unlabelled
        expected = {e.where for _, e, _ in checks} - MAY_BE_EMPTY
        empty = sorted(expected - with_data)
        if not empty or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)  # rate() windows fill as scrapes arrive
    assert not empty, f"expressions without data: {empty}"


def _metric_names(expr: str) -> set[str]:
    import re

    return set(re.findall(r"\b(billsync_[a-z0-9_]+|up)\b(?=\s*[{\[)]|\s*$|\s)", expr))
