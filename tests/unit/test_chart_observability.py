"""The chart's opt-in observability objects, rendered without a cluster: the PrometheusRule, the
Grafana dashboard's ConfigMap and the ServiceMonitor's labels.

The PrometheusRule must carry exactly the alerts of deploy/prometheus/phalanx-rules.yaml (the file
that is unit-tested with promtool), so it is compared with that file as data, and the rendered rules
are checked by promtool again: a template that mangled an expression or a `{{ $labels }}` template would
otherwise reach Prometheus unnoticed (no Kubernetes schema covers a PrometheusRule's content). Lint and
strict schema validation of every template run in test_chart_render.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.promql import promtool
from tests.unit.test_chart_render import CHART, HELMS, RELEASE, RELEASE_NAMESPACE, Obj, helm, only, render

RULES = REPO / "deploy" / "prometheus" / "phalanx-rules.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "phalanx-dashboard.json"


def rules_file() -> dict[str, Any]:
    return dict(yaml.safe_load(RULES.read_text()))


def rule_objects(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] == "PrometheusRule"]


def test_prometheus_rule_only_when_enabled() -> None:
    """Rendering a PrometheusRule where the Prometheus Operator is absent would fail the install."""
    assert not rule_objects(render())
    assert not rule_objects(render("--set", "metrics.serviceMonitor.enabled=true"))
    rule = only(render("--set", "prometheusRule.enabled=true"), "PrometheusRule", RELEASE_NAMESPACE)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"] == "phalanx"


@pytest.mark.parametrize("helm_name", HELMS)
def test_prometheus_rule_carries_the_rules_file_unchanged(helm_name: str) -> None:
    """With no runbookBaseURL, the rules are the file's, to the character (expressions, `for`, labels,
    annotations with their Prometheus templates)."""
    rule = only(
        render("--set", "prometheusRule.enabled=true", helm_name=helm_name), "PrometheusRule", RELEASE_NAMESPACE
    )
    assert rule["spec"] == rules_file()


def test_runbook_urls_point_at_the_published_runbooks() -> None:
    objs = render(
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.runbookBaseURL=https://git.example.com/phalanx/blob/v0.1.0/docs/runbooks/",
        "--set",
        "prometheusRule.labels.release=kps",
    )
    rule = only(objs, "PrometheusRule", RELEASE_NAMESPACE)
    assert rule["metadata"]["labels"]["release"] == "kps"
    urls = {r["alert"]: r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert urls and urls == {
        name: f"https://git.example.com/phalanx/blob/v0.1.0/docs/runbooks/{name}.md" for name in urls
    }
    # Nothing else moved.
    expected = rules_file()
    for group in expected["groups"]:
        for r in group["rules"]:
            r["annotations"]["runbook_url"] = urls[r["alert"]]
    assert rule["spec"] == expected


def test_rule_labels_are_added_to_every_alert_without_overriding_its_own() -> None:
    """Routing labels (a team) reach every alert; an alert's severity is its own."""
    objs = render(
        "--set", "prometheusRule.enabled=true", "--set", "prometheusRule.ruleLabels.team=storage",
        "--set", "prometheusRule.ruleLabels.severity=page",
    )  # fmt: skip
    rule = only(objs, "PrometheusRule", RELEASE_NAMESPACE)
    own = {r["alert"]: r["labels"] for g in rules_file()["groups"] for r in g["rules"]}
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            assert r["labels"] == {**own[r["alert"]], "team": "storage"}


@pytest.mark.parametrize("helm_name", HELMS)
def test_promtool_accepts_the_rendered_rules(helm_name: str, tmp_path: Path) -> None:
    """What the Prometheus Operator hands to Prometheus: the PrometheusRule's spec, a rule file."""
    values = ["--set", "prometheusRule.enabled=true", "--set", "prometheusRule.runbookBaseURL=https://x.example/r"]
    rule = only(render(*values, helm_name=helm_name), "PrometheusRule", RELEASE_NAMESPACE)
    path = tmp_path / "rendered-rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run(
        [str(promtool()), "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (["--set", "prometheusRule.runbookBaseURL=docs/runbooks"], "runbookBaseURL"),
        (["--set", "prometheusRule.enable=true"], "enable"),
        (["--set-json", "prometheusRule.ruleLabels.n=1"], "ruleLabels"),
        (["--set-json", "grafanaDashboard.labels.grafana_dashboard=1"], "grafana_dashboard"),
        (["--set", "grafanaDashboard.namespace=Not_A_Namespace"], "namespace"),
    ],
)
def test_observability_values_that_cannot_work_are_refused(values: list[str], complaint: str) -> None:
    """A runbook base that is not a URL, a misspelt key, a label value that is not a string (the
    sidecar's `"1"` given as the number 1 would never match), a namespace that cannot be one."""
    for helm_name in HELMS:
        result = helm(helm_name, "template", RELEASE, str(CHART), *values, check=False)
        assert result.returncode != 0, f"{helm_name} accepted {values}"
        assert complaint in result.stderr, result.stderr


def test_service_monitor_keeps_the_stores_namespace_label() -> None:
    """Store metrics carry the store's `namespace`; without honorLabels Prometheus would rename it
    exported_namespace (the target's namespace wins) and every alert and panel would see nothing."""
    objs = render("--set", "metrics.serviceMonitor.enabled=true")
    [endpoint] = only(objs, "ServiceMonitor", RELEASE_NAMESPACE)["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True


def dashboards(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")]


def test_dashboard_config_map_only_when_enabled() -> None:
    assert not dashboards(render())


@pytest.mark.parametrize("helm_name", HELMS)
def test_dashboard_config_map_carries_the_dashboard_for_grafanas_sidecar(helm_name: str) -> None:
    """The file to the byte (Grafana's own ${...} variables untouched by Helm), under the label the
    sidecar of kube-prometheus-stack looks for by default."""
    [config_map] = dashboards(render("--set", "grafanaDashboard.enabled=true", helm_name=helm_name))
    assert config_map["metadata"]["name"] == "phalanx-dashboard"
    assert config_map["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "annotations" not in config_map["metadata"]
    assert config_map["data"] == {"phalanx-dashboard.json": DASHBOARD.read_text()}


def test_dashboard_config_map_goes_where_the_sidecar_watches() -> None:
    objs = render(
        "--set", "grafanaDashboard.enabled=true,grafanaDashboard.namespace=monitoring",
        "--set", "grafanaDashboard.labels.grafana_dashboard=null,grafanaDashboard.labels.dashboards=phalanx",
        "--set", "grafanaDashboard.annotations.grafana_folder=Storage",
    )  # fmt: skip
    [config_map] = dashboards(objs)
    metadata = config_map["metadata"]
    assert metadata["namespace"] == "monitoring"
    assert metadata["labels"]["dashboards"] == "phalanx" and "grafana_dashboard" not in metadata["labels"]
    assert metadata["annotations"] == {"grafana_folder": "Storage"}
