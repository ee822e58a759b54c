"""Fixtures: one real control plane per test session, a fresh namespace per test, the simulator handle.

Tests that take the ``cluster`` fixture (directly or through ``namespace``/``sim``) get the session's
sandbox, started on first use; unit tests never start it. When a cluster test fails, the report names
the directory holding every component's log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import requests

from phalanx import kube as k
from phalanx.kube import Kube, load_api_client
from phalanx_sandbox import Sandbox, SimulatorHandle, wait_for
from phalanx_sandbox.controlplane import Process, free_port

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / ".tools" / "bin"


def tool(name: str) -> str:
    """A binary fetched by hack/fetch-tools.sh (helm3, helm4, kubectl)."""
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} missing: run `make tools`")
    return str(path)


@dataclass
class Cluster:
    """The session's sandbox as the tests see it."""

    sandbox: Sandbox

    @property
    def kubeconfig(self) -> str:
        return str(self.sandbox.kubeconfig)

    @property
    def logs_dir(self) -> Path:
        return self.sandbox.logs_dir

    def api_client(self) -> kubernetes.client.ApiClient:
        return load_api_client(self.kubeconfig)

    def kube(self) -> Kube:
        return Kube.from_kubeconfig(self.kubeconfig)

    def run(
        self, argv: list[str], *, check: bool = True, input: str | None = None, kubeconfig: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": kubeconfig or self.kubeconfig}
        result = subprocess.run(argv, capture_output=True, text=True, input=input, env=env, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, kubeconfig: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run([tool("kubectl"), *args], check=check, input=input, kubeconfig=kubeconfig)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    sandbox = Sandbox(workdir=tmp_path_factory.mktemp("cluster"), say=lambda line: print(line))
    sandbox.start()
    pytest.phalanx_logs = str(sandbox.logs_dir)  # type: ignore[attr-defined]
    try:
        yield Cluster(sandbox)
    finally:
        sandbox.stop()


def parse_exposition(text: str) -> dict[str, float]:
    """Prometheus text format -> ``{name{labels}: value}`` (comments skipped)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


@dataclass
class Operator:
    """The Phalanx operator, running as its own process against the session's cluster; restartable."""

    cluster: Cluster
    name: str = "operator"
    """Its process's name (and log file's)."""
    metrics_port: int = field(default_factory=free_port)
    liveness_port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        return self.cluster.logs_dir / f"{self.name}.log"

    identity: str = field(default_factory=lambda: f"test-operator-{free_port()}")
    """Its lease identity, the same across restarts (as a pod's name is): a restarted operator takes
    its lease back at once instead of waiting for it to run out."""

    def start(self, **extra_env: str) -> Process:
        """Start it and wait until it holds the lease (not only until it answers)."""
        process = self.start_standby(**extra_env)
        wait_for(self.leads, "the operator to hold its lease", timeout=60)
        return process

    def start_standby(self, **extra_env: str) -> Process:
        """Start it and wait until it answers (a standby, while another holds the lease)."""
        env = {
            **os.environ,
            "KUBECONFIG": self.cluster.kubeconfig,
            "PHALANX_METRICS_PORT": str(self.metrics_port),
            "PHALANX_LIVENESS_PORT": str(self.liveness_port),
            "PHALANX_IDENTITY": self.identity,
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        process = self.cluster.sandbox.spawn(self.name, [sys.executable, "-m", "phalanx"], env=env)
        self.process = process

        def healthy() -> bool:
            assert process.alive(), f"operator exited:\n{process.tail()}"
            try:
                return requests.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1).ok
            except requests.RequestException:
                return False

        wait_for(healthy, "the operator's liveness endpoint", timeout=60)
        return process

    def leads(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.liveness_port}/leader", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.cluster.sandbox.extra.remove(self.process)
            self.process = None

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics, keyed by its line's name and labels."""
        return parse_exposition(requests.get(self.metrics_url, timeout=5).text)

    def reconciles(self, namespace: str, store: str) -> float:
        """Reconcile passes the operator completed for one store so far."""
        key = f'phalanx_reconciles_total{{namespace="{namespace}",outcome="ok",store="{store}"}}'
        return self.metrics().get(key, 0.0)

    def writes(self, namespace: str) -> float:
        """Writes the operator has sent to the API server so far, into one namespace."""
        mark = f'namespace="{namespace}"'
        return sum(v for k_, v in self.metrics().items() if k_.startswith("phalanx_api_requests_total{") and mark in k_)


def install_crds(cluster: Cluster) -> None:
    """The generated CRD (client-side validation off: kubectl 1.32 does not know a 1.20 server's schema)."""
    cluster.kubectl("apply", "--validate=false", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/replicatedstores.phalanx.dev", "--timeout=30s")


@pytest.fixture(scope="session")
def operator(cluster: Cluster) -> Iterator[Operator]:
    install_crds(cluster)
    running = Operator(cluster)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def kube(cluster: Cluster) -> Kube:
    return cluster.kube()


@pytest.fixture
def namespace(cluster: Cluster, kube: Kube) -> Iterator[str]:
    """A fresh namespace, usable at once (its default ServiceAccount and token exist)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.create(k.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    # On v1.20 the ServiceAccount admission refuses pods until the account's token secret exists.
    accounts = k.Resource("", "v1", "serviceaccounts")
    wait_for(lambda: (kube.find(accounts, "default", name) or {}).get("secrets"), f"{name}/default SA token")
    yield name
    kube.delete(k.NAMESPACES, name)


@pytest.fixture
def sim(kube: Kube) -> Iterator[SimulatorHandle]:
    """Fault injection; every node and zone stopped by a test is started again afterwards."""
    handle = SimulatorHandle(kube)
    yield handle
    restarted = [
        node["metadata"]["name"]
        for node in handle.nodes()
        if (node["metadata"].get("annotations") or {}).get("sim.phalanx.dev/stopped")
    ]
    for name in restarted:
        handle.start_node(name)

    def healthy() -> bool:
        return all(handle.node_ready(n) and not handle.kube.get(k.NODES, n)["spec"].get("taints") for n in restarted)

    wait_for(healthy, f"restarted nodes {restarted} to be Ready and untainted", timeout=60)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    logs = getattr(pytest, "phalanx_logs", None)
    if report.failed and logs and "cluster" in getattr(item, "fixturenames", ()):
        report.sections.append(("control plane logs", f"component logs: {logs}"))
