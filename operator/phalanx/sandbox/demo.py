"""``make demo``: Phalanx on the local sandbox cluster, narrated.

Brings the sandbox up in a private state directory, shows what the cluster offers (nodes per zone,
storage and snapshot classes), then takes it down again. ``make sandbox`` is the one that stays up.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from phalanx import kube as k
from phalanx.sandbox import Sandbox


def say(line: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {line}", flush=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="phalanx-demo-") as workdir:
        sandbox = Sandbox(workdir=Path(workdir), say=say)
        say("starting a real control plane (etcd, kube-apiserver, controller-manager, scheduler) and the simulator")
        sandbox.start()
        try:
            kube = sandbox.kube()
            zones: dict[str, list[str]] = defaultdict(list)
            for node in kube.items(k.NODES):
                zones[node["metadata"]["labels"].get("topology.kubernetes.io/zone", "?")].append(
                    node["metadata"]["name"]
                )
            for zone, names in sorted(zones.items()):
                say(f"zone {zone}: {', '.join(sorted(names))}")
            classes = [c["metadata"]["name"] for c in kube.items(k.STORAGECLASSES)]
            snap_classes = [c["metadata"]["name"] for c in kube.items(k.SNAPSHOT_CLASSES)]
            say(f"storage classes: {classes}; snapshot classes: {snap_classes}")
            timings = sandbox.timings
            say(f"control plane up in {timings['control_plane']:.1f}s, sandbox in {timings['total']:.1f}s")
        finally:
            sandbox.stop()
            say("sandbox stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
