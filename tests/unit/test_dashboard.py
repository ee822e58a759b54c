"""The Grafana dashboard (deploy/grafana/phalanx-dashboard.json): it loads, and every query can return
something.

A panel whose query names a metric the operator does not expose, or ignores the dashboard's store
selection, shows nothing or the wrong stores, and no tool complains. So every query's metric names are
checked against the operator's registry (tests/promql.py), every selector of a store metric must honour
the $job, $namespace and $store variables, and every expression is parsed by promtool (with Grafana's
variables replaced as Grafana would). The chart ships the same file in a ConfigMap
(test_chart_observability.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from phalanx import metrics
from tests.conftest import REPO
from tests.promql import exposed_names, metric_names, promtool

DASHBOARD = REPO / "deploy" / "grafana" / "phalanx-dashboard.json"
CHART_COPY = REPO / "charts" / "phalanx" / "files" / "phalanx-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24
# What Grafana puts in place of its variables when it sends a query.
SUBSTITUTIONS = {"$__rate_interval": "1m", "$__range": "6h", "$job": ".+", "$namespace": ".+", "$store": ".+"}
# Series whose labels name a store: every selector of one must honour the dashboard's selection.
STORE_LABELLED = {
    f"{metric._name}{suffix}"  # prometheus_client keeps a metric's name and labels in these attributes
    for metric in vars(metrics).values()
    if isinstance(metric, Counter | Gauge | Histogram) and "store" in metric._labelnames
    for suffix in ("", "_total", "_bucket", "_count", "_sum")
}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable (`label_values(expr, label)`)."""
    for panel in panels():
        for target in panel["targets"]:
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
            assert match, f"variable {variable['name']}: {variable['query']['query']!r}"
            yield f"variable {variable['name']}", match.group(1)


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] == "phalanx-overview"
    assert board["title"] == "Phalanx"
    assert isinstance(board["schemaVersion"], int)
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "job", "namespace", "store"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_every_panel_queries_the_chosen_prometheus_and_fits_the_grid() -> None:
    """Any Prometheus data source (the $datasource variable: no UID of someone's Grafana baked in), and
    no two panels on the same cells."""
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        cells = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["description"], panel
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_every_query_uses_only_series_the_operator_exposes() -> None:
    exposed = exposed_names()
    for where, expr in queries():
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        assert names <= exposed, f"{where} queries {sorted(names - exposed)}, which the operator never exposes"


def test_store_metrics_honour_the_selected_job_namespace_and_store() -> None:
    assert "phalanx_members" in STORE_LABELLED and "phalanx_reconciles_total" in STORE_LABELLED
    for where, expr in queries():
        if where.startswith("variable"):
            continue
        for name, selector in re.findall(r"(\w+)\{([^}]*)\}", expr):
            if name in STORE_LABELLED:
                for variable in ("job", "namespace", "store"):
                    assert f'{variable}=~"${variable}"' in selector, f"{where}: {name} ignores ${variable}"
            elif name.startswith(("phalanx_", "process_")):
                assert 'job=~"$job"' in selector, f"{where}: {name} ignores $job"


def test_the_dashboard_covers_what_issue_13_asks_for() -> None:
    """Stores by phase, members by zone and state, recoveries by source and their duration, snapshot
    age, rollout progress, reconcile latency and errors, API writes, the leader."""
    used = {name for _, expr in queries() for name in metric_names(expr)}
    assert {
        "phalanx_store_condition",
        "phalanx_members",
        "phalanx_recoveries_total",
        "phalanx_recovery_duration_seconds_bucket",
        "phalanx_snapshot_last_success_timestamp_seconds",
        "phalanx_rollout_members",
        "phalanx_reconcile_duration_seconds_bucket",
        "phalanx_reconciles_total",
        "phalanx_api_requests_total",
        "phalanx_leader",
    } <= used


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    """Each query as a recording rule, with Grafana's variables substituted: promtool parses them all."""
    rules = []
    for index, (where, expr) in enumerate(queries()):
        for variable, value in SUBSTITUTIONS.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"{where}: an unknown variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [str(promtool()), "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_charts_copy_is_byte_identical() -> None:
    """The chart's ConfigMap carries a copy (Helm reads no file outside the chart): `make chart-files`."""
    assert CHART_COPY.read_bytes() == DASHBOARD.read_bytes(), "charts/phalanx/files/ is stale: run `make chart-files`"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (namespace, store) (rate(phalanx_reconciles_total{outcome="error"}[5m])) > 0',
            {"phalanx_reconciles_total"},
        ),
        ("histogram_quantile(0.9, sum by (le) (rate(phalanx_x_bucket[$__rate_interval])))", {"phalanx_x_bucket"}),
        ('a / ignoring(progress) (b{progress="total"} > 0) or vector(0)', {"a", "b"}),
        ("(x unless x offset 15m) * 0 + 1 and on (namespace, store) y == 1", {"x", "y"}),
        ('label_replace(up, "dst", "$1", "src", "(.*)") + sum(z) without (pod)', {"up", "z"}),
        ('count(phalanx_store_condition{condition="Ready", store=~"$store"} == 1)', {"phalanx_store_condition"}),
        (
            "time() - phalanx_snapshot_last_success_timestamp_seconds",
            {"phalanx_snapshot_last_success_timestamp_seconds"},
        ),
    ],
)
def test_the_metric_name_reader(expr: str, names: set[str]) -> None:
    """What the checks above rest on: functions, keywords, labels, strings, durations and variables
    are not taken for metric names, and no metric is missed."""
    assert metric_names(expr) == names
