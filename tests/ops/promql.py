"""Every PromQL expression of the dashboards (deploy/grafana/*.json) and alert rules
(deploy/prometheus/rules/*.yml), for the tests that check them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
VARIABLE = re.compile(r"\$\{?(\w+)\}?")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class Expression:
    where: str  # "overview.json: Bills in (per second) A" or "rule BillsyncDeadLetters"
    expr: str  # may hold dashboard variables ($config)
    legend_labels: frozenset[str]  # labels the legend shows: each result series must have them

    def with_variables(self, values: dict[str, str]) -> str:
        return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), self.expr)


def load_dashboard(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def dashboard_expressions() -> list[Expression]:
    found = []
    for path in DASHBOARDS:
        for panel in load_dashboard(path)["panels"]:
            for target in panel["targets"]:
                labels = frozenset(LEGEND_LABEL.findall(target.get("legendFormat", "")))
                where = f"{path.name}: {panel['title']} {target['refId']}"
                found.append(Expression(where, target["expr"], labels))
    return found


def variable_queries() -> list[Expression]:
    """The dashboards' variable queries, label_values(SELECTOR, LABEL) as SELECTOR."""
    found = []
    for path in DASHBOARDS:
        for var in load_dashboard(path)["templating"]["list"]:
            if var["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+), *(\w+)\)", var["query"]["query"])
            if match is None:
                raise ValueError(f"{path.name}: variable {var['name']} is not label_values(...)")
            selector, label = match.groups()
            found.append(Expression(f"{path.name}: ${var['name']}", selector, frozenset([label])))
    return found


def rule_expressions() -> list[Expression]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                found.append(Expression(f"rule {name}", rule["expr"].strip(), frozenset()))
    return found
