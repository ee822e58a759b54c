"""``phalanx-sandbox``: the local sandbox cluster for people and scripts.

``up`` starts a supervisor in the background (control plane, simulator, and the operator when asked)
and returns once the cluster is ready, with its kubeconfig at ``<dir>/kubeconfig``. ``down`` stops it;
every process dies with the supervisor, so nothing is left behind. The fault injections act through
the API server, exactly as the tests do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from phalanx import kube as k
from phalanx.kube import Kube
from phalanx_sandbox import Sandbox, SimulatorHandle
from phalanx_sandbox.controlplane import ControlPlaneError


def default_dir() -> Path:
    return Path(os.environ.get("PHALANX_SANDBOX_DIR", ".sandbox")).absolute()


def _pid(directory: Path) -> int | None:
    try:
        pid = int((directory / "supervisor.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def cmd_serve(args: argparse.Namespace) -> int:
    """The supervisor: run the sandbox until SIGTERM, then stop everything."""
    directory: Path = args.dir
    state_file = directory / "state.json"
    sandbox = Sandbox(
        workdir=directory / "cluster",
        zones=args.zones.split(","),
        nodes_per_zone=args.nodes_per_zone,
        say=lambda line: print(line, flush=True),
    )
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    try:
        sandbox.start()
        if args.operator:
            sandbox.start_operator()
        shutil.copyfile(sandbox.kubeconfig, directory / "kubeconfig")
        state = {
            "pid": os.getpid(),
            "ready": True,
            "timings": sandbox.timings,
            "logs": str(sandbox.logs_dir),
            "metrics_port": sandbox.operator_metrics_port,
        }
        state_file.write_text(json.dumps(state))
        done.wait()
    except ControlPlaneError as error:
        state_file.write_text(json.dumps({"pid": os.getpid(), "ready": False, "error": str(error)}))
        print(f"sandbox failed: {error}", flush=True)
        return 1
    finally:
        sandbox.stop()
        (directory / "supervisor.pid").unlink(missing_ok=True)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if _pid(directory):
        print(f"sandbox already running; kubeconfig: {directory / 'kubeconfig'}")
        return 0
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "state.json").unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "phalanx_sandbox.cli",
        "--dir",
        str(directory),
        "serve",
        f"--zones={args.zones}",
        f"--nodes-per-zone={args.nodes_per_zone}",
        *(["--operator"] if args.operator else []),
    ]
    with (directory / "supervisor.log").open("ab") as log:
        supervisor = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    (directory / "supervisor.pid").write_text(str(supervisor.pid))
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        state_file = directory / "state.json"
        if state_file.exists():
            state = json.loads(state_file.read_text())
            if state.get("ready"):
                timings = state.get("timings", {})
                total, plane = timings.get("total", 0), timings.get("control_plane", 0)
                print(f"sandbox up in {total:.1f}s (control plane {plane:.1f}s)")
                print(f"kubeconfig: {directory / 'kubeconfig'}   logs: {state.get('logs')}")
                if state.get("metrics_port"):
                    print(f"operator metrics: http://127.0.0.1:{state['metrics_port']}/metrics")
                print(f"try: kubectl --kubeconfig {directory / 'kubeconfig'} get nodes -L topology.kubernetes.io/zone")
                return 0
            print(state.get("error", "sandbox failed"), file=sys.stderr)
            return 1
        if supervisor.poll() is not None:
            print(f"sandbox supervisor exited; see {directory / 'supervisor.log'}", file=sys.stderr)
            return 1
        time.sleep(0.2)
    print(f"sandbox not ready after {args.timeout}s; see {directory / 'supervisor.log'}", file=sys.stderr)
    return 1


def cmd_down(args: argparse.Namespace) -> int:
    pid = _pid(args.dir)
    if pid is None:
        print("sandbox not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _pid(args.dir):
        time.sleep(0.1)
    if _pid(args.dir):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    print("sandbox stopped")
    return 0


def _kube(args: argparse.Namespace) -> Kube:
    kubeconfig = args.dir / "kubeconfig"
    if not _pid(args.dir) or not kubeconfig.exists():
        raise SystemExit("sandbox not running: phalanx-sandbox up")
    return Kube.from_kubeconfig(str(kubeconfig))


def cmd_status(args: argparse.Namespace) -> int:
    if not _pid(args.dir):
        print("sandbox not running")
        return 3
    kube = _kube(args)
    print(f"sandbox running; kubeconfig: {args.dir / 'kubeconfig'}")
    print(f"{'NODE':<22}{'ZONE':<10}{'READY':<8}TAINTS")
    for node in sorted(kube.items(k.NODES), key=lambda n: n["metadata"]["name"]):
        ready = next((c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"), "?")
        taints = ",".join(t["key"].split("/")[-1] + ":" + t["effect"] for t in node["spec"].get("taints") or [])
        zone = node["metadata"]["labels"].get("topology.kubernetes.io/zone", "")
        print(f"{node['metadata']['name']:<22}{zone:<10}{ready:<8}{taints}")
    return 0


def cmd_fault(args: argparse.Namespace) -> int:
    handle = SimulatorHandle(_kube(args))
    if args.command == "stop-node":
        handle.stop_node(args.name)
    elif args.command == "start-node":
        handle.start_node(args.name)
    elif args.command == "stop-zone":
        print("stopped:", " ".join(handle.stop_zone(args.name)))
    elif args.command == "start-zone":
        print("started:", " ".join(handle.start_zone(args.name)))
    elif args.command == "lose-volume":
        print("deleted volume", handle.lose_volume(args.namespace, args.name))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="phalanx-sandbox", description="A local sandbox Kubernetes cluster for Phalanx."
    )
    root.add_argument("--dir", type=Path, default=default_dir(), help="state directory (default: ./.sandbox)")
    sub = root.add_subparsers(dest="command", required=True)
    for name, helptext in (("up", "start in the background"), ("serve", argparse.SUPPRESS)):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--zones", default="zone-a,zone-b,zone-c")
        cmd.add_argument("--nodes-per-zone", type=int, default=2)
        cmd.add_argument("--operator", action="store_true", help="also run the Phalanx operator")
        cmd.add_argument("--timeout", type=float, default=180)
    sub.add_parser("down", help="stop everything")
    sub.add_parser("status", help="nodes, zones, readiness")
    for name in ("stop-node", "start-node"):
        sub.add_parser(name, help=f"{name.split('-')[0]} a node's kubelet").add_argument("name")
    for name in ("stop-zone", "start-zone"):
        sub.add_parser(name, help=f"{name.split('-')[0]} every node of a zone").add_argument("name")
    lose = sub.add_parser("lose-volume", help="the disk behind a PVC is gone")
    lose.add_argument("namespace")
    lose.add_argument("name")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handlers = {"up": cmd_up, "serve": cmd_serve, "down": cmd_down, "status": cmd_status}
    return handlers.get(args.command, cmd_fault)(args)


if __name__ == "__main__":
    sys.exit(main())
