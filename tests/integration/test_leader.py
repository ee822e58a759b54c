"""Leader election on the real control plane: two operator processes, one Lease. The standby takes
over when the leader is killed; a leader frozen past its lease and woken up writes nothing more and
exits; a stopped leader gives its lease back so the standby takes over at once."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from phalanx import kube as k
from phalanx.kube import Kube, Obj
from phalanx_sandbox import wait_for
from tests.conftest import Cluster, Operator
from tests.integration.test_operator import member_claims, member_pods, store, wait_ready

pytestmark = pytest.mark.cluster

FAST = {
    "PHALANX_LEASE_NAME": "phalanx-failover",
    "PHALANX_LEASE_DURATION": "4",
    "PHALANX_RENEW_DEADLINE": "3",
    "PHALANX_RETRY_PERIOD": "1",
}
"""Short durations, and a Lease of its own: the session's operator is stopped meanwhile."""


@pytest.fixture
def pair(operator: Operator, cluster: Cluster) -> Iterator[tuple[Operator, Operator]]:
    """Two operators on one Lease (the session's operator stopped meanwhile, then started again)."""
    operator.stop()
    first = Operator(cluster, name="operator-a")
    second = Operator(cluster, name="operator-b")
    try:
        first.start(PHALANX_TEST_FIELD_MANAGER="phalanx-a", **FAST)
        second.start_standby(PHALANX_TEST_FIELD_MANAGER="phalanx-b", **FAST)
        yield first, second
    finally:
        for one in (first, second):
            if one.process is not None and one.process.alive():
                os.kill(pid(one), signal.SIGCONT)  # a frozen one must hear the SIGTERM
            one.stop()
        operator.start()


def pid(one: Operator) -> int:
    assert one.process is not None and one.process.popen is not None
    return one.process.popen.pid


def test_the_standby_takes_over_when_the_leader_is_killed_and_heals_what_broke_meanwhile(
    pair: tuple[Operator, Operator], kube: Kube, namespace: str
) -> None:
    leader, standby = pair
    assert leader.leads() and not standby.leads()
    assert standby.metrics().get("phalanx_leader") == 0 and leader.metrics().get("phalanx_leader") == 1
    kube.create(k.STORES, store("failover"), namespace)
    wait_ready(kube, namespace, "failover", 3)
    victim = kube.get(k.PODS, "failover-2", namespace)
    os.kill(pid(leader), signal.SIGKILL)
    killed = time.monotonic()
    kube.delete(k.PODS, "failover-2", namespace)  # broken while nobody leads
    wait_for(standby.leads, "the standby to take over", timeout=30, interval=0.1)
    took = time.monotonic() - killed
    assert took <= float(FAST["PHALANX_LEASE_DURATION"]) + 3, f"took over after {took:.1f}s"

    def recreated() -> bool:
        pod = kube.find(k.PODS, "failover-2", namespace)
        return pod is not None and pod["metadata"]["uid"] != victim["metadata"]["uid"]

    wait_for(recreated, "the deleted member's pod recreated by the new leader", timeout=30)
    events = [e for e in kube.items(k.EVENTS, "default") if e.get("reason") == "LeaderElected"]
    assert any(standby.identity in e.get("message", "") for e in events), "the new leader is named in an Event"


def test_a_frozen_leader_that_wakes_up_writes_nothing_more_and_exits(
    pair: tuple[Operator, Operator], kube: Kube, namespace: str
) -> None:
    leader, standby = pair
    kube.create(k.STORES, store("frozen"), namespace)
    wait_ready(kube, namespace, "frozen", 3)
    os.kill(pid(leader), signal.SIGSTOP)
    wait_for(standby.leads, "the standby to take over from the frozen leader", timeout=30, interval=0.1)
    kube.patch(k.STORES, "frozen", {"spec": {"replicas": 4}}, namespace)  # work for whoever acts
    woken = datetime.now(UTC).replace(microsecond=0)
    os.kill(pid(leader), signal.SIGCONT)
    process = leader.process
    assert process is not None
    wait_for(lambda: not process.alive(), "the woken leader to exit", timeout=15, interval=0.1)
    wait_ready(kube, namespace, "frozen", 4)
    assert "stops acting" in leader.log_path.read_text()
    late = [
        f"{obj['kind']} {obj['metadata']['name']} at {entry['time']}"
        for obj in written_objects(kube, namespace, "frozen")
        for entry in obj["metadata"].get("managedFields") or []
        if entry.get("manager") == "phalanx-a" and parse(entry["time"]) > woken
    ]
    assert late == [], f"the woken leader wrote after it lost its lease: {late}"


def written_objects(kube: Kube, namespace: str, name: str) -> list[Obj]:
    found = [{**o, "kind": "Pod"} for o in member_pods(kube, namespace, name)]
    found += [{**o, "kind": "PersistentVolumeClaim"} for o in member_claims(kube, namespace, name)]
    found.append({**kube.get(k.STORES, name, namespace), "kind": "ReplicatedStore"})
    return found


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_a_stopped_leader_gives_its_lease_back_and_the_standby_leads_at_once(
    pair: tuple[Operator, Operator], kube: Kube
) -> None:
    leader, standby = pair
    stopping = time.monotonic()
    leader.stop()  # SIGTERM
    wait_for(standby.leads, "the standby to lead", timeout=10, interval=0.1)
    took = time.monotonic() - stopping
    assert took < float(FAST["PHALANX_LEASE_DURATION"]), f"waited for the lease to run out ({took:.1f}s)"
    lease = kube.get(k.LEASES, FAST["PHALANX_LEASE_NAME"], "default")
    assert lease["spec"]["holderIdentity"] == standby.identity
