"""The local sandbox cluster: a real control plane plus the simulator, as one thing to start and stop.

Used by the pytest fixtures (one per test session) and by the ``phalanx-sandbox`` command (one in the
background for people and scripts). Not part of the operator: Phalanx itself never imports it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from phalanx import crd
from phalanx import kube as k
from phalanx.kube import Kube
from phalanx_sandbox.controlplane import ControlPlane, ControlPlaneError, Process, free_port
from phalanx_sandbox.faults import SimulatorHandle, wait_for

__all__ = ["ControlPlaneError", "Sandbox", "SimulatorHandle", "wait_for"]


@dataclass
class Sandbox:
    """Control plane, simulator and (optionally) the operator, in ``workdir``."""

    workdir: Path
    zones: list[str] = field(default_factory=lambda: ["zone-a", "zone-b", "zone-c"])
    nodes_per_zone: int = 2
    pod_ready_after: float = 0.5
    say: Callable[[str], None] = print
    plane: ControlPlane | None = None
    extra: list[Process] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    operator_metrics_port: int | None = None
    """Where the operator started by ``start_operator`` serves /metrics."""

    @property
    def kubeconfig(self) -> Path:
        assert self.plane is not None, "sandbox not started"
        return self.plane.kubeconfig

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    def kube(self) -> Kube:
        return Kube.from_kubeconfig(str(self.kubeconfig))

    def start(self) -> None:
        begin = time.monotonic()
        self.plane = ControlPlane(workdir=self.workdir, say=self.say)
        self.plane.start()
        self.timings["control_plane"] = self.plane.started_seconds
        try:
            self._start_simulator()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - begin
        self.say(
            f"sandbox ready in {self.timings['total']:.1f}s: {len(self.zones)} zones x {self.nodes_per_zone} nodes"
        )

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        """Run another process of the sandbox (the operator), dying with it, logging beside it."""
        process = Process(name=name, argv=argv, log_path=self.logs_dir / f"{name}.log", env=env)
        process.start()
        self.extra.append(process)
        return process

    def start_operator(self, **extra_env: str) -> Process:
        """Install the ReplicatedStore CRD (generated from the models) and run ``python -m phalanx``."""
        kube = self.kube()
        kube.ensure(k.CRDS, crd.build())

        def established() -> bool:
            found = kube.find(k.CRDS, "replicatedstores.phalanx.dev") or {}
            conditions = (found.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        wait_for(established, "the ReplicatedStore CRD to be established")
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONUNBUFFERED": "1",
            "PHALANX_METRICS_PORT": str(free_port()),
            "PHALANX_LIVENESS_PORT": "0",
            **extra_env,
        }
        process = self.spawn("operator", [sys.executable, "-m", "phalanx"], env=env)
        self.operator_metrics_port = int(env["PHALANX_METRICS_PORT"])
        return process

    def _start_simulator(self) -> None:
        ready_file = self.workdir / "simulator.ready"
        ready_file.unlink(missing_ok=True)
        process = self.spawn(
            "simulator",
            [
                sys.executable,
                "-m",
                "phalanx_sandbox.simulator",
                f"--kubeconfig={self.kubeconfig}",
                f"--zones={','.join(self.zones)}",
                f"--nodes-per-zone={self.nodes_per_zone}",
                f"--pod-ready-after={self.pod_ready_after}",
                f"--ready-file={ready_file}",
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

        def up() -> bool:
            if not process.alive():
                raise ControlPlaneError(f"simulator exited; {process.log_path}:\n{process.tail()}")
            return ready_file.exists()

        wait_for(up, "the simulator to start", timeout=60)
        kube = self.kube()
        expected = len(self.zones) * self.nodes_per_zone

        def nodes_schedulable() -> bool:
            nodes = kube.items(k.NODES, selector="type=phalanx-sim")
            usable = [n for n in nodes if not n["spec"].get("taints") and _ready(n)]
            return len(usable) == expected

        # The node-lifecycle controller lifts the not-ready taint once a node reports Ready.
        wait_for(nodes_schedulable, f"{expected} simulated nodes to be Ready and untainted", timeout=60)

    def stop(self) -> None:
        for process in reversed(self.extra):
            process.stop()
        self.extra.clear()
        if self.plane is not None:
            self.plane.stop()


def _ready(node: k.Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
