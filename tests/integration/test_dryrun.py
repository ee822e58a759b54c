"""The dry run on the real control plane, run as users run it (``python -m phalanx plan -f``, in a
process of its own): it lists what the operator would do, and writes nothing — proven by watches on
everything of the store's namespace that Phalanx writes, open for the whole dry run, and by the
store's unchanged resourceVersion."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from phalanx import kube as k
from phalanx.dryrun import PLACEHOLDER_UID
from phalanx.kube import Kube, Obj
from phalanx_sandbox import wait_for
from tests.conftest import Cluster, Operator
from tests.integration.test_operator import member_pods, passes, store, wait_ready
from tests.watching import Watcher

pytestmark = pytest.mark.cluster

WATCHED = (k.STORES, k.PODS, k.PVCS, k.SERVICES, k.SNAPSHOTS, k.Resource("policy", "v1beta1", "poddisruptionbudgets"))
"""Everything namespaced that Phalanx writes for a store (the test cluster is v1.20: policy/v1beta1)."""


def versions(kube: Kube, namespace: str) -> dict[str, str]:
    """Every object's resourceVersion in the namespace, of the kinds Phalanx writes."""
    return {
        f"{res.plural}/{o['metadata']['name']}": str(o["metadata"]["resourceVersion"])
        for res in WATCHED
        for o in kube.items(res, namespace)
    }


def settled(kube: Kube, namespace: str, quiet: float = 3.0) -> None:
    """Until nothing in the namespace has changed for ``quiet`` seconds: the operator, Kopf and the
    simulator are done with the store, so any event the watches see next is the dry run's."""
    seen, since = versions(kube, namespace), time.monotonic()

    def still() -> bool:
        nonlocal seen, since
        now = versions(kube, namespace)
        if now != seen:
            seen, since = now, time.monotonic()
        return time.monotonic() - since >= quiet

    wait_for(still, f"{namespace} at rest", timeout=60)


def manifest_file(tmp_path: Path, body: Obj) -> Path:
    path = tmp_path / f"{body['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def plan_command(path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "phalanx", "plan", "-f", str(path), *args]


def test_a_dry_run_lists_what_applying_would_do_and_writes_nothing(
    cluster: Cluster, operator: Operator, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(k.STORES, store("orders", replicas=3), namespace)
    wait_ready(kube, namespace, "orders", 3)
    passes(operator, kube, namespace, "orders", 1)  # the last status write has been echoed
    settled(kube, namespace)
    before = kube.get(k.STORES, "orders", namespace)["metadata"]["resourceVersion"]
    scaled = store("orders", replicas=5)
    scaled["metadata"]["namespace"] = namespace
    fresh = store("fresh", replicas=3)  # a store that does not exist yet; its namespace from the flag

    watchers = [Watcher(kube, res, namespace, limit=120) for res in WATCHED]
    try:
        # $KUBECONFIG and the manifest's namespace, as kubectl would take them:
        text = cluster.run(plan_command(manifest_file(tmp_path, scaled))).stdout
        # --kubeconfig and --namespace win over $KUBECONFIG (here a file that does not exist):
        flags = ["--kubeconfig", cluster.kubeconfig, "--namespace", namespace, "-o", "json"]
        as_json = json.loads(
            cluster.run(plan_command(manifest_file(tmp_path, scaled), *flags), kubeconfig="/none").stdout
        )
        new = json.loads(cluster.run(plan_command(manifest_file(tmp_path, fresh), *flags), kubeconfig="/none").stdout)
        time.sleep(1.0)  # a write would be in the watches well within this
    finally:
        seen = {res.plural: watcher.stop() for res, watcher in zip(WATCHED, watchers, strict=True)}

    assert text.startswith("dry run: nothing was written\n"), text
    assert "CreateMember orders-4" in text and "CreateMember orders-5" in text, text
    assert text.count("CreateMember") == 2, text
    creates = [a for a in as_json["actions"] if a["kind"] == "CreateMember"]
    assert [a["target"] for a in creates] == ["orders-4", "orders-5"] and all(a["zone"] and a["why"] for a in creates)
    uid = kube.get(k.STORES, "orders", namespace)["metadata"]["uid"]
    assert as_json["store"]["exists"] and as_json["store"]["uid"] == uid
    assert as_json["status"]["lastSerial"] == 5

    assert not new["store"]["exists"] and new["store"]["uid"] == PLACEHOLDER_UID
    assert [a["target"] for a in new["actions"] if a["kind"] == "CreateMember"] == ["fresh-1", "fresh-2", "fresh-3"]
    assert {a["fields"]["child"] for a in new["actions"] if a["kind"] == "EnsureChild"} == {
        "peers-service",
        "client-service",
        "disruption-budget",
    }

    assert seen == {res.plural: [] for res in WATCHED}, "the dry run wrote"
    assert kube.get(k.STORES, "orders", namespace)["metadata"]["resourceVersion"] == before
    assert kube.find(k.STORES, "fresh", namespace) is None
    assert sorted(p["metadata"]["name"] for p in member_pods(kube, namespace, "orders")) == [
        "orders-1",
        "orders-2",
        "orders-3",
    ]


def test_an_invalid_manifest_is_refused_with_the_operators_message(tmp_path: Path) -> None:
    bad = store("broken", replicas=3, snapshots={"interval": "1h", "maxAge": "30m"})
    argv = plan_command(manifest_file(tmp_path, bad), "--namespace", "default", "--kubeconfig", "/none")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result  # refused before any cluster is read (there is none at /none)
    assert "spec.snapshots.maxAge" in result.stderr and "Stalled=True" in result.stderr, result.stderr
