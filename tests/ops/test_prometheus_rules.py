"""The alert rules are valid (promtool check rules) and behave as their unit tests say
(promtool test rules on deploy/prometheus/tests/). Needs Debian's `prometheus` package
(deploy/ci/install-prometheus.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*_test.yml"))


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: run deploy/ci/install-prometheus.sh (as root)")
    return found


def rules_by_alert() -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules[rule["alert"]] = rule
    return rules


def test_rules_are_valid() -> None:
    assert RULE_FILES
    done = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_has_a_runbook_and_a_test() -> None:
    tested = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["exp_alerts"]:
                    tested.add(check["alertname"])
    for name, rule in rules_by_alert().items():
        assert len(rule["annotations"].get("runbook", "")) > 100, f"{name} has no runbook"
        assert name in tested, f"{name} has no promtool test in which it fires"


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_rules_unit_tests(test_file: Path, tmp_path: Path) -> None:
    """promtool test rules, with each rule's static runbook text filled in."""
    rules = rules_by_alert()
    spec = yaml.safe_load(test_file.read_text())
    spec["rule_files"] = [str((test_file.parent / f).resolve()) for f in spec["rule_files"]]
    for case in spec["tests"]:
        for check in case.get("alert_rule_test", []):
            runbook = rules[check["alertname"]]["annotations"]["runbook"]
            for alert in check["exp_alerts"]:
                alert.setdefault("exp_annotations", {})["runbook"] = runbook
    prepared = tmp_path / test_file.name
    prepared.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run(
        [promtool(), "test", "rules", str(prepared)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_local_stack_config_is_valid() -> None:
    """`make up` runs Prometheus with deploy/prometheus/local.yml (rules included)."""
    config = PROM / "local.yml"
    done = subprocess.run(
        [promtool(), "check", "config", str(config)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = {j["job_name"] for j in yaml.safe_load(config.read_text())["scrape_configs"]}
    assert jobs == {
        f"billsync-{s}"
        for s in (
            "router",
            "stripe-sink",
            "paddle-sink",
            "salesforce-sink",
            "xero-sink",
            "monitor",
            "control",
            "webhooks",
        )
    }
