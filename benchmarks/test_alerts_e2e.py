"""The alerts and the dashboard end to end: a real Prometheus server scrapes a running operator, a node
is stopped, and PhalanxMemberLost fires.

Run with ``make bench`` (not part of ``make test``: it starts a Prometheus server and waits for a real
recovery). promtool unit-tests every alert over made-up series (tests/unit/test_alerts.py); what only a
live system shows is here: the operator really exposes every series the alerts and the dashboard
name, Prometheus scrapes them as the chart tells it to (honor_labels, so the stores' `namespace` label
survives), the member-lost expression sees a real recovery's counter (born at 1, the case increase()
misses), the operator alerts stay silent while the operator leads, and every dashboard query runs on
Prometheus without error, the main ones with data.

The rules are deploy/prometheus/phalanx-rules.yaml with every `for` set to 0s: the durations are
promtool's to test; here each expression is judged on live series at once. Debian's Prometheus 2.42
(`make tools` links it into .tools/bin); the test is skipped without it.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from phalanx import kube as k
from phalanx.kube import Kube
from phalanx_sandbox import SimulatorHandle, wait_for
from phalanx_sandbox.controlplane import free_port
from tests.conftest import REPO, TOOLS, Operator
from tests.integration.test_operator import store, wait_ready
from tests.promql import declared_series, metric_names
from tests.unit.test_dashboard import SUBSTITUTIONS, queries

RULES = REPO / "deploy" / "prometheus" / "phalanx-rules.yaml"
INTERVAL = "1s"  # scrape and evaluation
# Dashboard panels with nothing to show after a recovery in a healthy cluster with no rollout: every
# other query must return data.
EMPTY_HERE = {
    "Members not Ready, per store",
    "Reconcile errors by store",
    "Rollout progress",
    "Rollout steps by strategy",
    "Rollout step duration",
    "Rollout halts",
}
# Alerts that must stay silent: the operator's while it runs and leads (anywhere), and the store's
# reconcile errors (only this test's namespace: other benchmarks may fail passes on purpose).
OPERATOR_ALERTS = {"PhalanxOperatorAbsent", "PhalanxNoLeader"}


def prometheus_binary() -> str:
    linked = TOOLS / "prometheus"
    found = str(linked) if linked.exists() else shutil.which("prometheus")
    if found is None:
        pytest.skip("prometheus missing: run `make tools` (Debian's prometheus package)")
    return found


class Prometheus:
    """A Prometheus server scraping one operator, with Phalanx's rules, in its own directory."""

    def __init__(self, operator: Operator, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = yaml.safe_load(RULES.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = "0s"
        (workdir / "rules.yaml").write_text(yaml.safe_dump(rules))
        config = {
            "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL, "scrape_timeout": INTERVAL},
            "rule_files": [str(workdir / "rules.yaml")],
            "scrape_configs": [
                {
                    "job_name": "phalanx-metrics",
                    "honor_labels": True,  # as the chart's ServiceMonitor: the stores' namespace label
                    "static_configs": [{"targets": [f"127.0.0.1:{operator.metrics_port}"]}],
                }
            ],
        }
        (workdir / "prometheus.yaml").write_text(yaml.safe_dump(config))
        argv = [
            prometheus_binary(),
            f"--config.file={workdir / 'prometheus.yaml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.process = operator.cluster.sandbox.spawn("prometheus", argv)
        self.sandbox = operator.cluster.sandbox
        wait_for(self.ready, "Prometheus ready", timeout=60)

    def ready(self) -> bool:
        assert self.process.alive(), f"prometheus exited:\n{self.process.tail()}"
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        self.process.stop()
        self.sandbox.extra.remove(self.process)

    def api(self, path: str, **params: str) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def alerts(self, state: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["state"] == state]

    def evaluated_since(self, moment: float) -> bool:
        """Every rule group has been evaluated after `moment` (Unix time)."""
        groups = self.api("rules")["groups"]
        return bool(groups) and all(_timestamp(g["lastEvaluation"]) > moment for g in groups)

    def silent(self, namespace: str) -> bool:
        return not any(
            a["labels"]["alertname"] in OPERATOR_ALERTS
            or (a["labels"]["alertname"] == "PhalanxReconcileErrors" and a["labels"].get("namespace") == namespace)
            for a in self.alerts("firing")
        )

    def firing(self, name: str, **labels: str) -> dict[str, Any] | None:
        for alert in self.alerts("firing"):
            if alert["labels"]["alertname"] == name and labels.items() <= alert["labels"].items():
                return alert
        return None


def _timestamp(rfc3339: str) -> float:
    """Prometheus' RFC 3339 times carry nanoseconds; Python's parser takes microseconds."""
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).timestamp()


@pytest.fixture
def prometheus(operator: Operator, tmp_path: Path) -> Any:
    server = Prometheus(operator, tmp_path)
    yield server
    server.stop()


@pytest.mark.cluster
def test_a_stopped_node_fires_member_lost_on_a_real_prometheus(
    operator: Operator, prometheus: Prometheus, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    body = store("alerted", recovery={"memberFailureGrace": "1s"}, snapshots={"interval": "1h"})
    kube.create(k.STORES, body, namespace)
    wait_ready(kube, namespace, "alerted", 3, timeout=120)
    selector = f'namespace="{namespace}", store="alerted"'

    # Scraped, with the store's own namespace label, and the rules evaluated on it since: silent.
    wait_for(lambda: prometheus.query(f'phalanx_store_condition{{{selector}, condition="Ready"}} == 1'), "scraped")
    scraped = time.time()
    wait_for(lambda: prometheus.evaluated_since(scraped), "the rules evaluated on the scraped store")
    assert prometheus.firing("PhalanxMemberLost", namespace=namespace, store="alerted") is None
    assert prometheus.silent(namespace), prometheus.alerts("firing")

    node = kube.get(k.PODS, "alerted-2", namespace)["spec"]["nodeName"]
    sim.stop_node(node)
    stopped = time.monotonic()
    alert = wait_for(
        lambda: prometheus.firing("PhalanxMemberLost", namespace=namespace, store="alerted"),
        "PhalanxMemberLost firing",
        timeout=180,
        interval=0.5,
    )
    fired_after = time.monotonic() - stopped
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["runbook_url"] == "docs/runbooks/PhalanxMemberLost.md"
    assert f"{namespace}/alerted" in alert["annotations"]["summary"]
    record = kube.get(k.STORES, "alerted", namespace)["status"]["lastRecovery"]
    assert record["member"] == "alerted-2"
    wait_ready(kube, namespace, "alerted", 3, timeout=120)
    assert prometheus.silent(namespace), prometheus.alerts("firing")

    # Every series the alerts and the dashboard name is declared by the running operator.
    live = declared_series(requests.get(operator.metrics_url, timeout=5).text)
    used = {n for r in yaml.safe_load(RULES.read_text())["groups"] for a in r["rules"] for n in metric_names(a["expr"])}
    used |= {n for _, expr in queries() for n in metric_names(expr)}
    assert used <= live, f"not exposed by the running operator: {sorted(used - live)}"

    # Every dashboard query runs on Prometheus (an error fails the query), and has data where it should.
    # The replacement's time is observed when it turns Ready: wait until Prometheus has scraped it.
    wait_for(lambda: prometheus.query("phalanx_recovery_duration_seconds_count"), "the recovery's duration scraped")
    empty = set()
    for where, expr in queries():
        for variable, value in SUBSTITUTIONS.items():
            expr = expr.replace(variable, value)
        if not prometheus.query(expr):
            empty.add(where.split("'")[1] if where.startswith("panel") else where)
    assert empty <= EMPTY_HERE, f"dashboard queries without data: {sorted(empty - EMPTY_HERE)}"
    print(f"\nBENCH alerts {json.dumps({'node_stopped_to_member_lost_firing_s': round(fired_after, 1)})}")
