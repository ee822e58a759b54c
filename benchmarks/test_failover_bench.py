"""Failover time of the operator itself (issue: the operator survives its own failures).

Two operator processes on one Lease with the production defaults (leaseDuration 15 s, renewDeadline
10 s, retryPeriod 2 s). Ten times: SIGKILL the leader, delete a member's pod at once, and time until
the standby has recreated it (acting, not only holding the lease); then start the killed one again
as the new standby. Reports the median and the maximum; the bound is leaseDuration + retryPeriod +
the pass itself.

Run with ``make bench`` (or ``pytest benchmarks/test_failover_bench.py -s``); ``BENCH_FAILOVER_RUNS``
sets the number of runs (default 10).
"""

from __future__ import annotations

import os
import signal
import statistics
import time

import pytest

from phalanx import kube as k
from phalanx.kube import Kube
from phalanx_sandbox import wait_for
from tests.conftest import Cluster, Operator
from tests.integration.test_operator import store, wait_ready

pytestmark = pytest.mark.cluster

RUNS = int(os.environ.get("BENCH_FAILOVER_RUNS", "10"))
LEASE = {"PHALANX_LEASE_NAME": "phalanx-failover-bench"}


def test_failover_time(operator: Operator, cluster: Cluster, kube: Kube, namespace: str) -> None:
    operator.stop()  # two operators of their own on one Lease
    pair = [Operator(cluster, name="bench-a"), Operator(cluster, name="bench-b")]
    try:
        pair[0].start(**LEASE)
        pair[1].start_standby(**LEASE)
        kube.create(k.STORES, store("failover"), namespace)
        wait_ready(kube, namespace, "failover", 3)
        took = []
        for run in range(RUNS):
            leader = pair[0] if pair[0].leads() else pair[1]
            assert leader.process is not None and leader.process.popen is not None
            member = f"failover-{run % 3 + 1}"
            old = kube.get(k.PODS, member, namespace)["metadata"]["uid"]
            os.kill(leader.process.popen.pid, signal.SIGKILL)
            begin = time.monotonic()
            kube.delete(k.PODS, member, namespace)

            def acting(member: str = member, old: str = old) -> bool:
                pod = kube.find(k.PODS, member, namespace)
                return pod is not None and pod["metadata"]["uid"] != old

            wait_for(acting, "the standby to act", timeout=60, interval=0.05)
            took.append(time.monotonic() - begin)
            wait_ready(kube, namespace, "failover", 3)
            leader.stop()
            leader.start_standby(**LEASE)  # back as the standby: its lease identity is now held by the other
        print(
            f"\nfailover over {RUNS} runs (leaseDuration 15 s): median {statistics.median(took):.1f} s, "
            f"max {max(took):.1f} s; each: {', '.join(f'{t:.1f}' for t in took)}"
        )
        assert max(took) < 15 + 2 + 10, "a takeover within leaseDuration + retryPeriod + a pass"
    finally:
        for one in pair:
            one.stop()
        operator.start()
