"""``kubectl phalanx`` on the real control plane, run as users run it: the installed console script
``kubectl-phalanx`` in a process of its own (and once through kubectl's own plugin lookup), with the
test cluster's kubeconfig from ``$KUBECONFIG`` or ``--kubeconfig``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj
from phalanx_sandbox import wait_for
from tests.conftest import Cluster, Operator, tool
from tests.integration.test_operator import condition, member_claims, passes, store, wait_ready
from tests.integration.test_rollout import bump, pod_uids, rolled_out, rolling_store

pytestmark = pytest.mark.cluster

BIN = Path(sys.executable).parent
PLUGIN = BIN / "kubectl-phalanx"


def plugin(
    cluster: Cluster, *args: str, check: bool = True, kubeconfig: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The console script, with the cluster's kubeconfig in $KUBECONFIG (or ``kubeconfig``)."""
    return cluster.run([str(PLUGIN), *args], check=check, kubeconfig=kubeconfig)


def status_of(kube: Kube, namespace: str, name: str) -> Obj:
    return dict(kube.get(k.STORES, name, namespace).get("status") or {})


def test_status_shows_a_real_store_and_the_listing_and_errors_name_what_is_wrong(
    cluster: Cluster, operator: Operator, kube: Kube, namespace: str
) -> None:
    kube.create(k.STORES, store("orders", replicas=3), namespace)
    wait_ready(kube, namespace, "orders", 3)
    members = status_of(kube, namespace, "orders")["members"]

    text = plugin(cluster, "status", "orders", "-n", namespace).stdout
    assert text.startswith(f"{namespace}/orders: Ready, 3/3 ready"), text
    for member in members:
        line = next(line for line in text.splitlines() if line.strip().startswith(member["name"] + " "))
        assert "Ready" in line and member["node"] in line and member["volume"] in line
    for zone in ("zone-a", "zone-b", "zone-c"):
        assert f"  {zone}  1/1 ready" in text

    # --kubeconfig wins over $KUBECONFIG (here a file that does not exist); -o json for scripts
    flags = ["--kubeconfig", cluster.kubeconfig, "-n", namespace]
    data = json.loads(plugin(cluster, "status", "orders", "-o", "json", *flags, kubeconfig="/none").stdout)
    assert (data["name"], data["namespace"]) == ("orders", namespace)
    assert sorted(m["name"] for m in data["status"]["members"]) == ["orders-1", "orders-2", "orders-3"]

    listing = plugin(cluster, "status", "-n", namespace).stdout.splitlines()
    assert listing[0].split()[:5] == ["NAME", "READY", "ZONES", "PHASE", "LAST-SNAPSHOT"]
    assert listing[1].split()[:4] == ["orders", "3/3", "3/3", "Ready"]
    everywhere = plugin(cluster, "status", "-A").stdout
    assert any(line.split()[:2] == [namespace, "orders"] for line in everywhere.splitlines())

    # kubectl finds the plugin on the PATH and hands it its arguments
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    via_kubectl = subprocess.run(
        [tool("kubectl"), "phalanx", "status", "orders", "-n", namespace],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert via_kubectl.returncode == 0, via_kubectl
    assert via_kubectl.stdout.splitlines()[0] == text.splitlines()[0]  # the ages below may have moved on

    missing = plugin(cluster, "status", "nope", "-n", namespace, check=False)
    assert missing.returncode == 1
    assert f'no ReplicatedStore "nope" in namespace "{namespace}"' in missing.stderr
    assert f"kubectl phalanx status -n {namespace}" in missing.stderr

    plane = cluster.sandbox.plane
    assert plane is not None
    nobody = str(plane.kubeconfig_for(plane.credentials.unprivileged, "nobody"))
    refused = plugin(cluster, "status", "orders", "-n", namespace, check=False, kubeconfig=nobody)
    assert refused.returncode == 1
    assert f'may not get replicatedstores.phalanx.dev in namespace "{namespace}"' in refused.stderr, refused.stderr


def test_plan_with_a_manifest_lists_the_members_it_would_add_and_writes_nothing(
    cluster: Cluster, operator: Operator, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(k.STORES, store("orders", replicas=3), namespace)
    wait_ready(kube, namespace, "orders", 3)
    passes(operator, kube, namespace, "orders", 1)
    before = kube.get(k.STORES, "orders", namespace)["metadata"]["resourceVersion"]
    manifest = tmp_path / "orders.yaml"
    manifest.write_text(yaml.safe_dump(store("orders", replicas=5)))

    text = plugin(cluster, "plan", "orders", "-n", namespace, "-f", str(manifest)).stdout
    assert text.startswith("dry run: nothing was written\n"), text
    assert text.count("CreateMember") == 2 and "CreateMember orders-4" in text and "CreateMember orders-5" in text
    live = plugin(cluster, "plan", "orders", "-n", namespace).stdout
    assert "CreateMember" not in live, live
    assert kube.get(k.STORES, "orders", namespace)["metadata"]["resourceVersion"] == before


def test_snapshot_wait_returns_once_the_snapshot_carrying_its_token_is_ready(
    cluster: Cluster, operator: Operator, kube: Kube, namespace: str
) -> None:
    kube.create(k.STORES, store("orders", replicas=3, snapshots={"interval": "1h"}), namespace)
    wait_ready(kube, namespace, "orders", 3)
    result = plugin(cluster, "snapshot", "orders", "-n", namespace, "--wait", "--timeout", "60s")
    token = result.stdout.splitlines()[0].rsplit(f"{names.SNAPSHOT_REQUEST}=", 1)[1].rstrip(")")
    carrying = [
        s
        for s in kube.items(k.SNAPSHOTS, namespace, f"{names.STORE_LABEL}=orders")
        if (s["metadata"].get("annotations") or {}).get(names.SNAPSHOT_REQUEST) == token
    ]
    assert len(carrying) == 1 and carrying[0]["status"]["readyToUse"], carrying
    assert result.stdout.splitlines()[-1].startswith(f"snapshot {carrying[0]['metadata']['name']} is ready to use")
    annotations = kube.get(k.STORES, "orders", namespace)["metadata"]["annotations"]
    assert annotations[names.SNAPSHOT_REQUEST] == token
    managers = {f["manager"] for f in kube.get(k.STORES, "orders", namespace)["metadata"]["managedFields"]}
    assert "kubectl-phalanx" in managers


def test_pause_holds_a_template_change_and_resume_wait_sees_the_rollout_through(
    cluster: Cluster, operator: Operator, kube: Kube, namespace: str
) -> None:
    kube.create(k.STORES, rolling_store("paused", 3), namespace)
    wait_ready(kube, namespace, "paused", 3)
    said = plugin(cluster, "pause", "paused", "-n", namespace).stdout
    assert "rollouts paused" in said
    before = pod_uids(kube, namespace, "paused")
    bump(kube, namespace, "paused", "2")

    def planned() -> Obj | None:
        rollout = status_of(kube, namespace, "paused").get("rollout") or {}
        return rollout if rollout.get("paused") else None

    wait_for(planned, "the paused rollout in status", timeout=30)
    passes(operator, kube, namespace, "paused")
    assert pod_uids(kube, namespace, "paused") == before, "no step while paused"
    text = plugin(cluster, "status", "paused", "-n", namespace).stdout
    assert "paused: the next step waits" in text and "steps to come" in text, text

    result = plugin(cluster, "resume", "paused", "-n", namespace, "--wait", "--timeout", "90s")
    assert "rollouts resumed" in result.stdout.splitlines()[0]
    assert rolled_out(kube, namespace, "paused", 3) is not None, result.stdout
    assert not set(pod_uids(kube, namespace, "paused").values()) & set(before.values())


def test_replace_a_zone_wait_returns_once_its_members_are_replaced_and_the_store_ready(
    cluster: Cluster, operator: Operator, kube: Kube, namespace: str
) -> None:
    kube.create(k.STORES, rolling_store("rotate", 3), namespace)
    wait_ready(kube, namespace, "rotate", 3)
    zone_b = sorted(m["name"] for m in status_of(kube, namespace, "rotate")["members"] if m["zone"] == "zone-b")
    result = plugin(cluster, "replace", "rotate", "--zone", "zone-b", "-n", namespace, "--wait", "--timeout", "90s")
    assert f"replacement of {', '.join(zone_b)} requested" in result.stdout.splitlines()[0]
    obj = kube.get(k.STORES, "rotate", namespace)
    status = obj["status"]
    live = {m["name"] for m in status["members"]}
    assert not live & set(zone_b) and len(live) == 3
    assert [m["zone"] for m in status["members"]].count("zone-b") == 1
    assert condition(obj, "Ready")["status"] == "True" and status["replaceRequest"]["members"] == []
    assert status["replaceRequest"]["request"].startswith("zone/zone-b#")
    replacing = [
        (c["metadata"].get("annotations") or {}).get(names.REPLACES_ANNOTATION)
        for c in member_claims(kube, namespace, "rotate")
    ]
    assert sorted(r for r in replacing if r) == zone_b


def test_report_bundles_the_store_and_its_children_and_no_secret(
    cluster: Cluster, operator: Operator, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    body = store("orders", replicas=3)
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "ADMIN_PASSWORD", "value": "very-secret-value"}]
    kube.create(k.STORES, body, namespace)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"k": "hidden-value"}}
    kube.create(k.Resource("", "v1", "secrets"), secret, namespace)
    wait_ready(kube, namespace, "orders", 3)
    path = tmp_path / "report.tar.gz"
    result = plugin(cluster, "report", "orders", "-n", namespace, "-o", str(path))
    assert result.stdout.startswith(f"wrote {path}")
    with tarfile.open(path) as archive:
        files = {
            m.name.split("/", 1)[1]: archive.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in archive.getmembers()
        }
    saved = yaml.safe_load(files["store.yaml"])
    assert (saved["kind"], saved["metadata"]["name"], saved["metadata"]["namespace"]) == (
        "ReplicatedStore",
        "orders",
        namespace,
    )
    pods = yaml.safe_load(files["pods.yaml"])["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["orders-1", "orders-2", "orders-3"]
    assert len(yaml.safe_load(files["persistentvolumeclaims.yaml"])["items"]) == 3
    assert {"events.yaml", "services.yaml", "volumesnapshots.yaml", "plan.txt", "README.txt"} <= set(files)
    assert "operator" in files["README.txt"]  # the test operator runs outside the cluster: a note says so
    for text in files.values():
        assert "kind: Secret" not in text and "hidden-value" not in text and "very-secret-value" not in text
