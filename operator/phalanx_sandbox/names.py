"""The names the simulator and its fault-injection handle agree on: annotations, classes, the driver.

Kept apart from ``simulator`` so that clients (tests, the CLI) need not import the simulator itself.
"""

from __future__ import annotations

import json

from phalanx.kube import Obj

PREFIX = "sim.phalanx.dev/"
STOPPED = PREFIX + "stopped"  # on a Node: no heartbeats, no kubelet work
READY_AFTER = PREFIX + "ready-after"  # on a Pod: seconds from start to Ready
CRASH = PREFIX + "crash"  # on a Pod: "loop" keeps it unready; any other value crashes it once
EXIT_CODE = PREFIX + "exit-code"  # on a Pod: once it has run (ready-after), its containers exit with this code
DATA = PREFIX + "data"  # on a PV or VolumeSnapshotContent: the volume's data, JSON
RESTORE_FAILS = PREFIX + "restore-fails"  # on a VolumeSnapshot: restores from it fail
SNAPSHOT_FAILS = PREFIX + "snapshot-fails"  # on a VolumeSnapshotClass: snapshots of it fail
SNAPSHOT_DELAY = PREFIX + "ready-after"  # on a VolumeSnapshotClass: seconds until readyToUse
CATCH_UP_FROM = PREFIX + "catch-up-from"  # on a Pod: a label key; pods sharing its value are its peers
CATCH_UP_RATE = PREFIX + "catch-up-rate"  # on a Pod: bytes per second it copies from its peers
DRIVER = "sim.csi.phalanx.dev"
STORAGE_CLASS = "phalanx-sim"
SNAPSHOT_CLASS = "phalanx-sim"
ZONE_LABEL = "topology.kubernetes.io/zone"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
SNAPSHOT_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"


def volume_data(obj: Obj | None) -> dict[str, int]:
    """The simulated data a PV or snapshot content carries (``{"seq": 0, "bytes": 0}`` when empty)."""
    raw = ((obj or {}).get("metadata", {}).get("annotations") or {}).get(DATA)
    data: dict[str, int] = {"seq": 0, "bytes": 0}
    if raw:
        data.update(json.loads(raw))
    return data
