"""The alerts (deploy/prometheus/phalanx-rules.yaml), checked by Prometheus' own tool and read for on-call.

`promtool check rules` parses the file as Prometheus will; `promtool test rules` runs every alert over
made-up series (tests/data/prometheus/phalanx-rules.test.yaml) on Prometheus' own rule engine: each
fires when it should, after its `for`, with its labels and annotations rendered, and stays silent
otherwise. What promtool cannot know is checked here too: every alert has both kinds of test case,
queries only series the operator exposes, and points at a runbook that exists. Needs promtool (`make
tools`); only those tests are skipped without it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO
from tests.promql import exposed_names, metric_names, promtool

RULES = REPO / "deploy" / "prometheus" / "phalanx-rules.yaml"
CHART_COPY = REPO / "charts" / "phalanx" / "files" / "phalanx-rules.yaml"
RULE_TESTS = REPO / "tests" / "data" / "prometheus" / "phalanx-rules.test.yaml"
SEVERITIES = {"critical", "warning"}


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60, check=False)


def test_promtool_accepts_the_rules() -> None:
    result = run(promtool(), "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_every_alert_passes_its_unit_tests() -> None:
    """The test file names the rules by a path relative to itself, as promtool resolves it."""
    result = run(promtool(), "test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    """An alert tested only for firing could fire on everything; only for silence, on nothing."""
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for alert in alerts():
        name = alert["alert"]
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"no test case where {name} fires"
        assert any(not case["exp_alerts"] for case in mine), f"no test case where {name} stays silent"


def test_every_alert_queries_only_series_the_operator_exposes() -> None:
    exposed = exposed_names()
    for alert in alerts():
        names = metric_names(alert["expr"])
        assert names, f"{alert['alert']}: no metric found in {alert['expr']!r}"
        assert names <= exposed, f"{alert['alert']} queries {sorted(names - exposed)}, which the operator never exposes"


def test_every_alert_tells_on_call_what_it_means_and_where_the_runbook_is() -> None:
    names = [alert["alert"] for alert in alerts()]
    assert len(names) == len(set(names)), "alert names repeat"
    for alert in alerts():
        name = alert["alert"]
        assert name.startswith("Phalanx"), name
        assert alert["labels"]["severity"] in SEVERITIES, name
        annotations = alert["annotations"]
        assert {"summary", "description", "runbook_url"} <= annotations.keys(), name
        assert annotations["runbook_url"] == f"docs/runbooks/{name}.md"
        assert (REPO / annotations["runbook_url"]).is_file(), f"{annotations['runbook_url']} is missing"


def test_the_alerts_cover_what_on_call_must_hear_about() -> None:
    """Issue 13: a store not Ready, a member lost or a recovery too slow, snapshots stale, zones
    unbalanced, a rollout halted, reconcile errors, the operator absent or leaderless."""
    covered = {
        "PhalanxStoreNotReady": {"phalanx_store_condition"},
        "PhalanxStoreDegraded": {"phalanx_store_condition"},
        "PhalanxMemberLost": {"phalanx_recoveries_total", "phalanx_members"},
        "PhalanxSnapshotsStale": {"phalanx_store_condition"},
        "PhalanxZonesUnbalanced": {"phalanx_store_condition"},
        "PhalanxRolloutHalted": {"phalanx_rollout_halts_total", "phalanx_store_condition"},
        "PhalanxReconcileErrors": {"phalanx_reconciles_total"},
        "PhalanxOperatorAbsent": {"phalanx_leader"},
        "PhalanxNoLeader": {"phalanx_leader"},
    }
    assert {alert["alert"]: metric_names(alert["expr"]) for alert in alerts()} == covered


def test_the_charts_copy_is_byte_identical() -> None:
    """Helm reads no file outside the chart: the chart renders its PrometheusRule from a copy.

    On failure: `make chart-files`.
    """
    assert CHART_COPY.read_bytes() == RULES.read_bytes(), "charts/phalanx/files/ is stale: run `make chart-files`"
