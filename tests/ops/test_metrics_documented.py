"""docs/metrics.md lists every billsync metric that any service registers, with its labels."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import services
import shared

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(billsync_[a-z0-9_]+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)


def registered() -> dict[str, tuple[str, frozenset[str]]]:
    """Every billsync metric after importing every module: exposed name -> (type, labels)."""
    for package in (services, shared):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.endswith("__main__"):  # entry points run their service
                importlib.import_module(module.name)
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for collector in list(REGISTRY._collector_to_names):
        if not isinstance(collector, MetricWrapperBase):
            continue
        name, kind = collector._name, collector._type
        if not name.startswith("billsync_"):
            continue
        exposed = {"counter": f"{name}_total", "info": f"{name}_info"}.get(kind, name)
        labels = set(collector._labelnames)
        if kind == "info":  # an info metric's labels are the keys of its value
            labels |= {
                key for family in collector.collect() for s in family.samples for key in s.labels
            }
        found[exposed] = (kind, frozenset(labels))
    return found


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    rows = {}
    for name, kind, labels in ROW.findall(DOC.read_text()):
        rows[name] = (kind, frozenset(re.findall(r"`(\w+)`", labels)))
    return rows


def test_every_registered_metric_is_documented_with_its_labels() -> None:
    metrics, docs = registered(), documented()
    assert len(metrics) > 30  # the walk really found the services' metrics
    missing = sorted(set(metrics) - set(docs))
    assert not missing, f"add these metrics to docs/metrics.md: {missing}"
    wrong = {
        name: {"registered": sorted(metrics[name][1]), "documented": sorted(docs[name][1])}
        for name in metrics
        if docs[name][1] != metrics[name][1] or docs[name][0] != metrics[name][0]
    }
    assert not wrong, f"docs/metrics.md lists other labels or types: {wrong}"
    stale = sorted(set(docs) - set(metrics))
    assert not stale, f"docs/metrics.md lists metrics no service registers: {stale}"


def test_label_sets_are_bounded() -> None:
    unbounded = {"bill_id", "account_id", "run_id", "dispatch_id", "integration_run_id"}
    for name, (_, labels) in registered().items():
        assert not labels & unbounded, f"{name} has an unbounded label: {labels & unbounded}"
