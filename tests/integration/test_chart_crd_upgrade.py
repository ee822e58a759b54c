"""Upgrading the CRD on the real control plane: Helm never does it, the chart refuses to run over an
older one, and the documented command (docs/operations.md, Upgrades) brings it up to date.

Why it matters: an operator newer than its CRD meets stores whose new fields the API server pruned
(a structural schema drops what it does not know), silently. The test makes the cluster's CRD an older
one (the chart's without `spec.retiredVolumes` and the scale subresource, both added after the first
release), shows that pruning, shows that `helm upgrade` leaves the CRD as it is, that the chart's check
(`crds.check`) refuses to install or upgrade and names the command, then runs the command exactly as the
docs write it (the pre-1.25 form: this control plane is 1.20; the 1.25+ form, server-side apply,
cannot run here because the 1.20 server's apply schema refuses the CEL rules' field) and checks the
cluster's CRD equals the chart's, a store made before survives and the new field is kept.

The CRD is the session's: whatever happens, it is put back as the chart has it.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, Cluster, tool
from tests.integration.test_chart import CHART, CRD, CRD_FILE, ensure_crd

pytestmark = pytest.mark.cluster

DOCS = REPO / "docs" / "operations.md"
STORES = "replicatedstores.phalanx.dev"
# The command the docs give for clusters older than 1.25, run as written (from the repository's root).
DOCUMENTED = "kubectl replace --validate=false -f charts/phalanx/crds/"


def chart_crd() -> dict[str, Any]:
    return dict(yaml.safe_load(Path(CRD_FILE).read_text()))


def older(crd: dict[str, Any]) -> dict[str, Any]:
    """The chart's CRD as an earlier release had it: no spec.retiredVolumes, no scale subresource."""
    old = copy.deepcopy(crd)
    version = old["spec"]["versions"][0]
    del version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["retiredVolumes"]
    del version["subresources"]["scale"]
    return old


def without_cel(node: Any) -> Any:
    """A schema without `x-kubernetes-validations`: a 1.20 server drops them (it cannot run CEL)."""
    if isinstance(node, dict):
        return {k: without_cel(v) for k, v in node.items() if k != "x-kubernetes-validations"}
    if isinstance(node, list):
        return [without_cel(v) for v in node]
    return node


def live_crd(cluster: Cluster) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", CRD, "-o", "json").stdout))


def comparable(crd: dict[str, Any]) -> dict[str, Any]:
    """What the chart decides of a CRD, as the server keeps it: names, scope, versions (schema,
    subresources, printer columns) and labels."""
    spec = without_cel(crd["spec"])
    return {
        "labels": crd["metadata"].get("labels"),
        "group": spec["group"],
        "names": spec["names"],
        "scope": spec["scope"],
        "versions": spec["versions"],
    }


def helm(cluster: Cluster, *args: str, check: bool = True) -> tuple[int, str]:
    result = cluster.run([tool("helm3"), *args], check=check)
    return result.returncode, result.stdout + result.stderr


@pytest.fixture
def old_crd_in_the_cluster(cluster: Cluster, tmp_path: Path) -> Iterator[None]:
    """The cluster's CRD replaced by an older one; the chart's is put back afterwards."""
    ensure_crd(cluster)
    path = tmp_path / "older-crd.yaml"
    path.write_text(yaml.safe_dump(older(chart_crd())))
    cluster.kubectl("replace", "--validate=false", "-f", str(path))
    try:
        yield
    finally:
        cluster.kubectl("replace", "--validate=false", "-f", CRD_FILE)


def test_the_documented_command_is_there() -> None:
    """The test below runs the docs' own words: if they change, it must change with them."""
    assert DOCUMENTED in DOCS.read_text()
    assert "kubectl apply --server-side --force-conflicts -f charts/phalanx/crds/" in DOCS.read_text()


@pytest.mark.usefixtures("old_crd_in_the_cluster")
def test_an_older_crd_is_refused_then_brought_up_to_date_by_the_documented_command(
    cluster: Cluster, namespace: str
) -> None:
    release = "phalanx-crd-upgrade"
    store = yaml.safe_load((REPO / "examples" / "minimal.yaml").read_text())
    store["spec"]["retiredVolumes"] = {"policy": "Retain"}
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(store))
    # The harm: the old CRD does not know the field, so the API server dropped it.
    assert (
        "retiredVolumes"
        not in json.loads(cluster.kubectl("get", STORES, "minimal", "-n", namespace, "-o", "json").stdout)["spec"]
    )

    install = ["install", release, CHART, "-n", namespace, "--wait", "--timeout", "120s"]
    code, said = helm(cluster, *install, check=False)
    assert code != 0
    for words in (
        "v1alpha1: spec.retiredVolumes",
        "v1alpha1: subresources.scale",
        "kubectl apply --server-side --force-conflicts -f crds/",
        "kubectl replace --validate=false -f crds/",
    ):
        assert words in said, said
    try:
        # Installed without the check, and upgraded: Helm leaves the CRD as it found it.
        helm(cluster, *install, "--set", "crds.check=false")
        helm(
            cluster, "upgrade", release, CHART, "-n", namespace, "--set", "crds.check=false", "--set", "logFormat=json"
        )
        assert comparable(live_crd(cluster)) == comparable(older(chart_crd()))
        # With the check (the default), the upgrade is refused before anything changes.
        code, said = helm(cluster, "upgrade", release, CHART, "-n", namespace, "--reset-values", check=False)
        assert code != 0 and "v1alpha1: spec.retiredVolumes" in said, said

        # The documented command, as written, from the repository's root.
        argv = shlex.split(DOCUMENTED)
        result = cluster.run([tool("kubectl"), *argv[1:]], check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        cluster.kubectl("wait", "--for=condition=Established", CRD, "--timeout=60s")

        helm(cluster, "upgrade", release, CHART, "-n", namespace, "--reset-values", "--wait", "--timeout", "120s")
        assert comparable(live_crd(cluster)) == comparable(chart_crd())
        # The store made before is still there; the field is kept now.
        patch = json.dumps({"spec": {"retiredVolumes": {"policy": "Retain"}}})
        cluster.kubectl("patch", STORES, "minimal", "-n", namespace, "--type=merge", "-p", patch)
        spec = json.loads(cluster.kubectl("get", STORES, "minimal", "-n", namespace, "-o", "json").stdout)["spec"]
        assert (
            spec["retiredVolumes"] == {"policy": "Retain", "deleteAfter": "0s"}
            or spec["retiredVolumes"]["policy"] == "Retain"
        )
        cluster.kubectl(
            "get", "--raw", f"/apis/phalanx.dev/v1alpha1/namespaces/{namespace}/replicatedstores/minimal/scale"
        )
    finally:
        helm(cluster, "uninstall", release, "-n", namespace, "--wait", check=False)
