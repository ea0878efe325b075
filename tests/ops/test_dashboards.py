"""The Grafana dashboards (plain JSON in deploy/grafana/) are well-formed: unique ids, a
Prometheus query in every panel, no overlapping panels, only defined variables. Their
PromQL is checked against a live Prometheus by tests/integration/test_ops_promql.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops.promql import DASHBOARDS, VARIABLE, load_dashboard


def test_both_dashboards_exist() -> None:
    uids = {load_dashboard(p)["uid"] for p in DASHBOARDS}
    assert uids == {"billsync-overview", "billsync-configuration"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    board = load_dashboard(path)
    variables = {v["name"] for v in board["templating"]["list"]}
    assert "datasource" in variables
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            used = set(VARIABLE.findall(target["expr"]))
            assert used <= variables, f"{panel['title']} uses undefined variables {used}"
