"""Argo CD's health check on stores as the real control plane shows them.

The recorder drives one store through every state a person meets (created, creating, Ready, scaling,
a member's node down then its recovery, an invalid spec, paused, a paused rollout, a rollout in
flight, a halted rollout), watches every version of it the API server serves, runs the health script
(deploy/argocd/health.lua) on each, and checks the one that stands for each state as it goes. With
``PHALANX_RECORD_ARGOCD=1`` it also writes those objects to tests/data/argocd/ (committed), on which
tests/unit/test_argocd.py runs the script without a cluster.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj
from phalanx_sandbox import SimulatorHandle, wait_for
from tests.argocd import ARGOCD_CM, EXPECTED, HEALTH_KEY, HEALTH_LUA, RECORDED, health
from tests.conftest import Cluster, Operator
from tests.integration.test_operator import condition, store, wait_ready
from tests.integration.test_rollout import bump, rolled_out
from tests.watching import Watcher

pytestmark = pytest.mark.cluster

NAME = "argo"
CONFIGMAPS = k.Resource("", "v1", "configmaps")


class Recorder:
    """Every version of the store, from a watch; each state found once, checked and kept."""

    def __init__(self, kube: Kube, namespace: str, into: Path) -> None:
        self.kube, self.namespace, self.into = kube, namespace, into
        self.watcher = Watcher(kube, k.STORES, namespace, limit=240)
        self.seen = 0
        """Versions already looked at: a state is looked for only among those that came after."""
        self.kept: dict[str, Obj] = {}

    def keep(self, state: str, obj: Obj) -> Obj:
        """Check the health script on ``obj`` as it stands for ``state``, and keep it."""
        obj = json.loads(json.dumps(obj))
        obj["metadata"].pop("managedFields", None)  # who wrote which field: noise for a health check
        status, message = health(obj)
        expected, words = EXPECTED[state]
        assert (status, words in message) == (expected, True), f"{state}: {status}: {message}\n{obj.get('status')}"
        self.kept[state] = obj
        return obj

    def find(self, state: str, matches: Callable[[Obj], bool], timeout: float = 60) -> Obj:
        """The first version, after those already looked at, that ``matches``: kept as ``state``."""

        def first() -> Obj | None:
            events = self.watcher.events
            assert self.watcher.error is None, self.watcher.error
            for index in range(self.seen, len(events)):
                kind, obj = events[index]
                if kind != "DELETED" and matches(obj):
                    self.seen = index + 1
                    return obj
            return None

        return self.keep(state, wait_for(first, f"the store {state}", timeout=timeout, interval=0.05))

    def finish(self) -> list[tuple[str, Obj]]:
        events = self.watcher.stop()
        if os.environ.get("PHALANX_RECORD_ARGOCD") == "1":
            self.into = RECORDED
        self.into.mkdir(parents=True, exist_ok=True)
        for stale in self.into.glob("*.json"):
            stale.unlink()
        for state, obj in self.kept.items():
            (self.into / f"{state}.json").write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
        return events


def observed(obj: Obj) -> bool:
    status = obj.get("status") or {}
    return bool(status.get("observedGeneration") == obj["metadata"]["generation"])


def phase(name: str) -> Callable[[Obj], bool]:
    return lambda obj: observed(obj) and (obj.get("status") or {}).get("phase") == name


def rollout(obj: Obj) -> Obj:
    return dict((obj.get("status") or {}).get("rollout") or {})


def has(kind: str, value: str, reason: str | None = None) -> Callable[[Obj], bool]:
    def matches(obj: Obj) -> bool:
        found = condition(obj, kind)
        return observed(obj) and found.get("status") == value and (reason is None or found.get("reason") == reason)

    return matches


def test_the_health_check_on_every_state_of_a_store(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle, tmp_path: Path
) -> None:
    recorder = Recorder(kube, namespace, tmp_path / "argocd")
    gate = {"healthGate": {"minReadySeconds": 1, "consecutiveChecks": 1}, "canary": 1}
    body = store(NAME, replicas=3, updates=gate, recovery={"memberFailureGrace": "10s"})
    recorder.keep("created", kube.create(k.STORES, body, namespace))  # as the API server answered: no status
    recorder.find("creating", phase("Pending"))
    recorder.keep("ready", wait_ready(kube, namespace, NAME, 3))

    recorder.keep("scaled-not-yet-observed", kube.patch(k.STORES, NAME, {"spec": {"replicas": 4}}, namespace))
    recorder.find("scaling", phase("Pending"))
    wait_ready(kube, namespace, NAME, 4)

    # A member's node dies: unavailable (Degraded) within memberFailureGrace (long enough for a pass to see
    # it on a busy machine), then replaced (Recovering).
    victim = kube.get(k.PODS, f"{NAME}-1", namespace)["spec"]["nodeName"]
    sim.stop_node(victim)
    recorder.find("member-unavailable", has("Degraded", "True", "MembersUnavailable"), timeout=60)
    recorder.find("recovering", phase("Recovering"), timeout=60)
    wait_for(
        lambda: (kube.get(k.STORES, NAME, namespace)["status"].get("lastRecovery") or {}).get("readyAt"),
        "the replacement ready",
        timeout=60,
    )
    wait_ready(kube, namespace, NAME, 4)
    sim.start_node(victim)

    kube.patch(k.STORES, NAME, {"spec": {"updates": {"canary": 10}}}, namespace)  # more than replicas
    recorder.find("invalid-spec", phase("Invalid"))
    kube.patch(k.STORES, NAME, {"spec": {"updates": {"canary": 1}}}, namespace)
    wait_ready(kube, namespace, NAME, 4)

    kube.patch(k.STORES, NAME, {"spec": {"paused": True}}, namespace)
    recorder.find("paused", phase("Paused"))
    kube.patch(k.STORES, NAME, {"spec": {"paused": False}}, namespace)
    wait_ready(kube, namespace, NAME, 4)

    paused = {"metadata": {"annotations": {names.ROLLOUT_PAUSED_ANNOTATION: "true"}}}
    kube.patch(k.STORES, NAME, paused, namespace)
    bump(kube, namespace, NAME, "2")
    recorder.find("rollout-paused", lambda obj: observed(obj) and bool(rollout(obj).get("paused")))
    kube.patch(k.STORES, NAME, {"metadata": {"annotations": {names.ROLLOUT_PAUSED_ANNOTATION: None}}}, namespace)
    recorder.find("rolling-out", lambda obj: phase("Updating")(obj) and bool(rollout(obj).get("inFlight")))
    wait_for(lambda: rolled_out(kube, namespace, NAME, 4), "the rollout done", timeout=120, interval=0.5)

    template = kube.get(k.STORES, NAME, namespace)["spec"]["template"]
    broken = {**template, "metadata": {"annotations": {"sim.phalanx.dev/crash": "loop"}}}  # never Ready
    kube.patch(k.STORES, NAME, {"spec": {"template": broken, "updates": {"progressDeadline": "10s"}}}, namespace)
    recorder.find("rollout-halted", has("Stalled", "True", "RolloutHalted"), timeout=60)

    events = recorder.finish()
    assert list(recorder.kept) == list(EXPECTED), "every state, in order"
    # Every version the API server served, not only the ones kept, gets a health Argo CD knows.
    healths = [health(obj)[0] for kind, obj in events if kind != "DELETED"]
    assert set(healths) == {"Progressing", "Healthy", "Degraded", "Suspended"}


def test_the_argocd_cm_patch_of_the_readme_installs_the_script(cluster: Cluster, kube: Kube, namespace: str) -> None:
    """The README's command, on a ConfigMap like Argo CD's own (settings it already holds are kept)."""
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"}, "data": {"url": "x"}}
    kube.create(CONFIGMAPS, settings, namespace)
    patch = ("patch", "configmap", "argocd-cm", "--type", "merge", "--patch-file", str(ARGOCD_CM))
    cluster.kubectl("-n", namespace, *patch)
    data = kube.get(CONFIGMAPS, "argocd-cm", namespace)["data"]
    assert data == {"url": "x", HEALTH_KEY: HEALTH_LUA.read_text()}
