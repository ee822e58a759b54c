"""The operator at scale: many ReplicatedStores x 3 members over 30+ nodes. ``make bench``.

Each size (env ``BENCH_SCALE_STORES``, default ``50,200,1000``) runs on a fresh sandbox, its own
control plane, so that one size's leftovers (objects, watch caches, etcd history) never weigh on the
next one's numbers. Per size, in this order, on the same stores:

1. create every store at once -> all Ready (writes, Events, CPU and memory of operator, kube-apiserver, etcd);
2. exact counts: pods and PVCs == 3 x stores, no member serial above 3 (asserted: correctness);
3. the operator's memory at rest;
4. a steady window (``BENCH_STEADY_SECONDS``, default 120): writes in it (target 0);
5. operator restart with one member pod deleted while it is down: time until every store was
   reconciled again and the pod recreated, and the writes that took;
6. member pod deleted -> replacement pod created, p50/p99 over ~30 stores, with all stores present;
7. fan-out: every store 3 -> 4 replicas at once -> all Ready; exact counts again (asserted).

Only correctness is asserted; the targets are printed beside the numbers. Options (env):
``BENCH_STEADY_SECONDS``, ``BENCH_NODES_PER_ZONE`` (default 10: 30 nodes), ``BENCH_OPERATOR_ENV``
(comma-separated ``KEY=VALUE`` pairs added to the operator's environment, e.g. ``PHALANX_WORKERS=2000``),
``BENCH_EVENT_COMPONENTS`` (default ``kopf,phalanx``: the Event source that counts as the operator).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from benchmarks.measure import (
    ProcSample,
    metric_series,
    metric_total,
    percentile,
    proc_sample,
)
from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj
from phalanx_sandbox import Sandbox, wait_for
from tests.conftest import Cluster, Operator, install_crds, parse_exposition
from tests.integration.test_operator import condition, store, wait_ready


def _env_pairs(text: str) -> dict[str, str]:
    """``"A=1,B=2"`` -> ``{A: 1, B: 2}``: extra operator settings without editing the harness."""
    pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
    return {key.strip(): value.strip() for key, value in pairs}


SIZES = [int(n) for n in os.environ.get("BENCH_SCALE_STORES", "50,200,1000").split(",") if n.strip()]
STEADY_SECONDS = float(os.environ.get("BENCH_STEADY_SECONDS", "120"))
NODES_PER_ZONE = int(os.environ.get("BENCH_NODES_PER_ZONE", "10"))
OPERATOR_ENV = _env_pairs(os.environ.get("BENCH_OPERATOR_ENV", ""))
EVENT_COMPONENTS = {c.strip() for c in os.environ.get("BENCH_EVENT_COMPONENTS", "kopf,phalanx").split(",") if c.strip()}
NAMESPACES = [f"bench-{i}" for i in range(10)]
REPLICAS, FANOUT_REPLICAS = 3, 4
DELETION_SAMPLES = 30
CREATE_THREADS = 16
MB = 2**20
TRACKED = ("operator", "kube-apiserver", "etcd")
Row = dict[str, float]


def ready_timeout(stores: int) -> float:
    """A deadline that grows with the size (1,800 s at 1,000 stores): a hang fails, a slow run does not."""
    return max(300.0, 1.8 * stores)


def poll_interval(stores: int) -> float:
    """How often to LIST every store: often enough to time small sizes, rarely enough not to load big ones."""
    return min(2.0, max(0.25, stores / 500))


@dataclass(frozen=True)
class Ref:
    namespace: str
    name: str


def store_refs(count: int) -> list[Ref]:
    """``s-0000`` ... spread round-robin over the bench namespaces, so that no namespace holds them all."""
    return [Ref(NAMESPACES[i % len(NAMESPACES)], f"s-{i:04d}") for i in range(count)]


# ------------------------------------------------------------------------------------------------
# One size's world


@dataclass
class Bench:
    """A fresh sandbox with the operator, the stores' names, and the numbers measured so far."""

    sandbox: Sandbox
    operator: Operator
    kube: Kube
    refs: list[Ref]
    row: Row
    problems: list[str] = field(default_factory=list)
    seen_events: set[str] = field(default_factory=set)
    earlier_operators: ProcSample = field(default_factory=lambda: ProcSample(0.0, 0, 0))
    """CPU of operator processes already stopped (restarts), and their peak memory."""

    @property
    def stores(self) -> int:
        return len(self.refs)

    def pids(self) -> dict[str, int]:
        plane = self.sandbox.plane
        assert plane is not None and plane.processes
        found = {p.name: p.popen.pid for p in plane.processes if p.popen is not None and p.name in TRACKED}
        process = self.operator.process
        assert process is not None and process.popen is not None, "operator not running"
        found["operator"] = process.popen.pid
        return found

    def usage(self) -> dict[str, ProcSample]:
        """CPU and memory of the operator (all its incarnations), kube-apiserver and etcd, now."""
        now = {name: proc_sample(pid) for name, pid in self.pids().items()}
        live, gone = now["operator"], self.earlier_operators
        now["operator"] = ProcSample(
            live.cpu_seconds + gone.cpu_seconds, max(live.peak_rss_bytes, gone.peak_rss_bytes), live.rss_bytes
        )
        return now

    def writes(self) -> float:
        """Every write the operator has counted (all verbs, resources, namespaces, codes) since it started."""
        return metric_total(self.operator.metrics(), "phalanx_api_requests_total")

    def writes_by_kind(self) -> Counter[str]:
        """The operator's writes so far by ``verb resource`` (non-2xx answers as ``verb resource code``)."""
        kinds: Counter[str] = Counter()
        for labels, value in metric_series(self.operator.metrics(), "phalanx_api_requests_total"):
            code = labels.get("code", "")
            kind = f"{labels.get('verb')} {labels.get('resource')}" + ("" if code.startswith("2") else f" {code}")
            kinds[kind] += int(value)
        return kinds

    def reconcile_errors(self) -> float:
        return metric_total(self.operator.metrics(), "phalanx_reconciles_total", outcome="error")

    def new_events(self) -> int:
        """Events the operator posted in the bench namespaces since the last call (uids: immune to the 1 h TTL)."""
        fresh = 0
        for namespace in NAMESPACES:
            for event in self.kube.items(k.EVENTS, namespace):
                source = (event.get("source") or {}).get("component")
                if {source, event.get("reportingComponent")} & EVENT_COMPONENTS:
                    uid = event["metadata"]["uid"]
                    fresh += uid not in self.seen_events
                    self.seen_events.add(uid)
        return fresh

    def store_writes_seen_by_apiserver(self) -> float:
        """Writes to replicatedstores (status and Kopf's own patches included) as kube-apiserver counts them.

        The operator's counter covers the writes Phalanx makes itself; Kopf's finalizer and
        ``status.kopf`` patches and its Events go around it. The server's count catches both."""
        plane = self.sandbox.plane
        assert plane is not None
        response = requests.get(
            f"{plane.server}/metrics",
            headers={"Authorization": f"Bearer {plane.credentials.admin}"},
            verify=str(plane.ca_file),
            timeout=30,
        )
        response.raise_for_status()
        total = 0.0
        for labels, value in metric_series(parse_exposition(response.text), "apiserver_request_total"):
            if labels.get("resource") == "replicatedstores" and labels.get("verb") not in ("GET", "LIST", "WATCH"):
                total += value
        return total

    def check(self, ok: bool, problem: str) -> None:
        """Correctness, collected: asserted at the end so that one broken count still lets the rest be measured."""
        if not ok:
            self.problems.append(problem)
            print(f"BENCH PROBLEM stores={self.stores}: {problem}")


def create_namespaces(kube: Kube) -> None:
    """The bench namespaces, usable at once: v1.20 refuses pods until the default ServiceAccount's token exists."""
    accounts = k.Resource("", "v1", "serviceaccounts")
    for name in NAMESPACES:
        kube.create(k.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for name in NAMESPACES:

        def token(name: str = name) -> object:
            return (kube.find(accounts, "default", name) or {}).get("secrets")

        wait_for(token, f"{name}/default SA token")


@contextlib.contextmanager
def scale_world(workdir: Path, stores: int, row: Row) -> Iterator[Bench]:
    """A fresh control plane, simulator and operator for one size; everything stopped afterwards."""
    sandbox = Sandbox(workdir=workdir, nodes_per_zone=NODES_PER_ZONE, pod_ready_after=0.5, say=print)
    sandbox.start()
    try:
        cluster = Cluster(sandbox)
        kube = cluster.kube()
        row["nodes"] = len(kube.items(k.NODES, selector="type=phalanx-sim"))
        create_namespaces(kube)
        install_crds(cluster)
        operator = Operator(cluster)
        operator.start(**OPERATOR_ENV)
        print(f"BENCH stores={stores}: sandbox in {workdir}, operator env {OPERATOR_ENV or '{}'}")
        try:
            yield Bench(sandbox, operator, kube, store_refs(stores), row)
        finally:
            operator.stop()
    finally:
        sandbox.stop()


# ------------------------------------------------------------------------------------------------
# Waiting and counting


def store_ready(obj: Obj, replicas: int) -> bool:
    """Ready=True for the current generation with exactly ``replicas`` ready members (as ``wait_ready``)."""
    status = obj.get("status") or {}
    return (
        condition(obj, "Ready").get("status") == "True"
        and status.get("observedGeneration") == obj["metadata"]["generation"]
        and status.get("readyReplicas") == replicas
    )


def wait_all_ready(bench: Bench, replicas: int, started: float) -> float:
    """Seconds from ``started`` until one LIST of every store shows all of them Ready with ``replicas``."""
    deadline = started + ready_timeout(bench.stores)
    count = 0
    while time.monotonic() < deadline:
        stores = bench.kube.items(k.STORES)  # no namespace: one list across all of them
        count = sum(store_ready(s, replicas) for s in stores)
        if count == bench.stores:
            return time.monotonic() - started
        time.sleep(poll_interval(bench.stores))
    raise TimeoutError(f"{count}/{bench.stores} stores Ready with {replicas} after {ready_timeout(bench.stores):.0f}s")


def serial_of(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def census(bench: Bench, replicas: int, prefix: str) -> None:
    """Exact counts of member pods and PVCs, and the highest serial: a duplicate or a churned member shows here."""
    selector = names.STORE_LABEL
    pods = bench.kube.items(k.PODS, selector=selector)
    claims = bench.kube.items(k.PVCS, selector=selector)
    serial = max((serial_of(o["metadata"]["name"]) for o in [*pods, *claims]), default=0)
    bench.row.update({f"{prefix}_pods": len(pods), f"{prefix}_pvcs": len(claims), f"{prefix}_max_serial": serial})
    want = replicas * bench.stores
    bench.check(len(pods) == want, f"{prefix}: {len(pods)} member pods, want {want}")
    bench.check(len(claims) == want, f"{prefix}: {len(claims)} member PVCs, want {want}")
    bench.check(serial <= replicas, f"{prefix}: member serial {serial} above the replica count {replicas}")


def record_usage(row: Row, prefix: str, usage: dict[str, ProcSample], since: dict[str, ProcSample] | None) -> None:
    """CPU seconds (a delta when ``since`` is given) and peak RSS of each tracked process."""
    for name in TRACKED:
        now = usage[name].minus(since[name]) if since else usage[name]
        short = name.removeprefix("kube-")
        row[f"{prefix}_cpu_{short}"] = now.cpu_seconds
        row[f"{prefix}_peak_mb_{short}"] = now.peak_rss_bytes / MB


# ------------------------------------------------------------------------------------------------
# Phases


def phase_create(bench: Bench) -> None:
    """Every store created at once by 16 clients; measured from the first create to all Ready."""
    before_usage, before_writes, before_kinds = bench.usage(), bench.writes(), bench.writes_by_kind()
    before_store_writes = bench.store_writes_seen_by_apiserver()
    started = time.monotonic()
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        list(pool.map(lambda ref: bench.kube.create(k.STORES, store(ref.name, REPLICAS), ref.namespace), bench.refs))
    bench.row["create_api_s"] = time.monotonic() - started
    bench.row["create_ready_s"] = wait_all_ready(bench, REPLICAS, started)
    record_usage(bench.row, "create", bench.usage(), before_usage)
    bench.row["create_writes_per_store"] = (bench.writes() - before_writes) / bench.stores
    server_writes = bench.store_writes_seen_by_apiserver() - before_store_writes - bench.stores  # less our creates
    bench.row["create_store_writes_per_store"] = server_writes / bench.stores
    bench.row["create_events_per_store"] = bench.new_events() / bench.stores
    kinds = bench.writes_by_kind()
    kinds.subtract(before_kinds)
    bench.row["create_failed_writes"] = sum(n for kind, n in kinds.items() if len(kind.split()) == 3)
    breakdown = ", ".join(f"{kind}: {n / bench.stores:.2f}" for kind, n in kinds.most_common() if n)
    print(f"BENCH stores={bench.stores} create writes per store by kind: {breakdown}")


def phase_rest(bench: Bench) -> None:
    """The steady window: no store changes, so every write in it is waste (target 0); memory at rest after it."""
    before_usage, before_writes = bench.usage(), bench.writes()
    bench.new_events()
    time.sleep(STEADY_SECONDS)  # the measurement window itself, not a synchronisation
    after = bench.usage()
    bench.row["steady_writes"] = bench.writes() - before_writes
    bench.row["steady_events"] = bench.new_events()
    bench.row["steady_operator_cpu_pct"] = (
        100 * after["operator"].minus(before_usage["operator"]).cpu_seconds / (STEADY_SECONDS or 1)
    )
    bench.row["rest_rss_mb_operator"] = after["operator"].rss_bytes / MB


def member_pods_by_store(kube: Kube) -> dict[Ref, list[str]]:
    """Member pod names of every store, sorted, from one LIST."""
    found: dict[Ref, list[str]] = {}
    for pod in kube.items(k.PODS, selector=names.STORE_LABEL):
        meta = pod["metadata"]
        found.setdefault(Ref(meta["namespace"], meta["labels"][names.STORE_LABEL]), []).append(meta["name"])
    return {ref: sorted(pods, key=serial_of) for ref, pods in found.items()}


def reconciled_everywhere(operator: Operator, refs: list[Ref]) -> bool:
    """Every store has a successful pass counted by this operator process (the counter starts at 0 each run)."""
    try:
        samples = operator.metrics()
    except requests.RequestException:
        return False  # the new process is not serving /metrics yet
    done = {
        Ref(labels.get("namespace", ""), labels.get("store", ""))
        for labels, value in metric_series(samples, "phalanx_reconciles_total")
        if labels.get("outcome") == "ok" and value >= 1
    }
    return done.issuperset(refs)


def phase_restart(bench: Bench) -> None:
    """Operator down, a member pod deleted meanwhile, operator up: time to every store reconciled + pod back."""
    victim = bench.refs[len(bench.refs) // 2]
    pod = member_pods_by_store(bench.kube)[victim][0]
    usage = bench.usage()["operator"]
    bench.operator.stop()
    bench.earlier_operators = ProcSample(usage.cpu_seconds, usage.peak_rss_bytes, 0)
    bench.kube.delete(k.PODS, pod, victim.namespace, grace_seconds=0)
    wait_for(lambda: bench.kube.find(k.PODS, pod, victim.namespace) is None, f"{pod} gone", timeout=60)
    bench.new_events()
    started = time.monotonic()
    bench.operator.start(**OPERATOR_ENV)

    def caught_up() -> bool:
        return reconciled_everywhere(bench.operator, bench.refs) and bool(
            bench.kube.find(k.PODS, pod, victim.namespace)
        )

    wait_for(caught_up, "every store reconciled and the deleted pod recreated", ready_timeout(bench.stores), 0.25)
    bench.row["restart_s"] = time.monotonic() - started
    wait_ready(bench.kube, victim.namespace, victim.name, REPLICAS, timeout=120)
    bench.row["restart_writes"] = bench.writes()  # a fresh process: its counter is the restart's writes
    bench.row["restart_events"] = bench.new_events()


def replacement_latency(kube: Kube, ref: Ref, pod: str) -> float | None:
    """Seconds from deleting a member pod to its replacement existing (polled every 5 ms), None on timeout."""
    old = kube.get(k.PODS, pod, ref.namespace)["metadata"]["uid"]
    kube.delete(k.PODS, pod, ref.namespace, grace_seconds=0)
    deleted = time.monotonic()

    def replaced() -> bool:
        found = kube.find(k.PODS, pod, ref.namespace)
        return bool(found and found["metadata"]["uid"] != old)

    try:
        wait_for(replaced, f"replacement of {pod}", timeout=30, interval=0.005)
    except TimeoutError:
        return None
    return time.monotonic() - deleted


def phase_pod_deletions(bench: Bench) -> None:
    """Pod deletion -> replacement created, one store at a time, spread over the stores, all of them present."""
    pods = member_pods_by_store(bench.kube)
    samples = min(DELETION_SAMPLES, bench.stores)
    chosen = [bench.refs[i * bench.stores // samples] for i in range(samples)]
    latencies, misses = [], 0
    for index, ref in enumerate(chosen):
        pod = pods[ref][index % len(pods[ref])]
        latency = replacement_latency(bench.kube, ref, pod)
        if latency is None:
            misses += 1
        else:
            latencies.append(latency)
        wait_ready(bench.kube, ref.namespace, ref.name, REPLICAS, timeout=120)
    bench.row.update(
        {
            "deletion_p50_ms": percentile(latencies, 50) * 1000,
            "deletion_p99_ms": percentile(latencies, 99) * 1000,
            "deletion_samples": len(latencies),
            "deletion_timeouts": misses,
        }
    )
    bench.check(misses == 0, f"{misses} deleted pods not replaced within 30 s")


def phase_fanout(bench: Bench) -> None:
    """Every store scaled 3 -> 4 at once (merge patch): time to all Ready with 4, and the writes it took."""
    before_writes, before_usage = bench.writes(), bench.usage()
    bench.new_events()
    patch = {"spec": {"replicas": FANOUT_REPLICAS}}
    started = time.monotonic()
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        list(pool.map(lambda ref: bench.kube.patch(k.STORES, ref.name, patch, ref.namespace), bench.refs))
    bench.row["fanout_ready_s"] = wait_all_ready(bench, FANOUT_REPLICAS, started)
    bench.row["fanout_writes_per_store"] = (bench.writes() - before_writes) / bench.stores
    bench.row["fanout_events_per_store"] = bench.new_events() / bench.stores
    bench.row["fanout_cpu_operator"] = bench.usage()["operator"].minus(before_usage["operator"]).cpu_seconds


def phase_totals(bench: Bench) -> None:
    """Whole-run CPU and peak memory, and reconcile passes that failed."""
    record_usage(bench.row, "total", bench.usage(), None)
    bench.row["reconcile_errors"] = bench.reconcile_errors()


# ------------------------------------------------------------------------------------------------
# Reporting

Format = Callable[[float], str]


def _n(digits: int) -> Format:
    return lambda value: f"{value:.{digits}f}"


REPORT: list[tuple[str, str, Format, str]] = [
    ("nodes", "simulated nodes", _n(0), ">= 30"),
    ("create_api_s", "create: all POSTs done (s)", _n(1), ""),
    ("create_ready_s", "create: first POST -> all Ready (s)", _n(1), ""),
    ("converged_pods", "pods after convergence", _n(0), "= 3 x stores"),
    ("converged_pvcs", "PVCs after convergence", _n(0), "= 3 x stores"),
    ("converged_max_serial", "max member serial", _n(0), "<= 3"),
    ("create_writes_per_store", "create: operator writes / store", _n(1), "<= 25"),
    ("create_failed_writes", "create: operator writes answered non-2xx", _n(0), ""),
    ("create_store_writes_per_store", "create: store writes / store (apiserver, incl. Kopf)", _n(1), ""),
    ("create_events_per_store", "create: operator Events / store", _n(1), ""),
    ("create_cpu_operator", "create: CPU s operator", _n(1), ""),
    ("create_cpu_apiserver", "create: CPU s kube-apiserver", _n(1), ""),
    ("create_cpu_etcd", "create: CPU s etcd", _n(1), ""),
    ("create_peak_mb_operator", "create: peak RSS MB operator", _n(0), ""),
    ("create_peak_mb_apiserver", "create: peak RSS MB kube-apiserver", _n(0), ""),
    ("create_peak_mb_etcd", "create: peak RSS MB etcd", _n(0), ""),
    ("rest_rss_mb_operator", "operator RSS at rest (MB)", _n(0), "<= 300"),
    ("steady_writes", "steady: writes in window", _n(0), "0"),
    ("steady_events", "steady: Events in window", _n(0), "0"),
    ("steady_operator_cpu_pct", "steady: operator CPU %", _n(1), ""),
    ("restart_s", "restart: start -> all reconciled + pod back (s)", _n(1), "<= 60"),
    ("restart_writes", "restart: writes", _n(0), "a few"),
    ("restart_events", "restart: Events", _n(0), ""),
    ("deletion_p50_ms", "pod deleted -> replacement p50 (ms)", _n(0), ""),
    ("deletion_p99_ms", "pod deleted -> replacement p99 (ms)", _n(0), "< 1000"),
    ("deletion_samples", "pod deletion samples", _n(0), "~30"),
    ("fanout_ready_s", "fan-out 3->4: patch -> all Ready (s)", _n(1), ""),
    ("fanout_writes_per_store", "fan-out: writes / store", _n(1), ""),
    ("fanout_events_per_store", "fan-out: Events / store", _n(1), ""),
    ("fanout_cpu_operator", "fan-out: CPU s operator", _n(1), ""),
    ("fanout_pods", "pods after fan-out", _n(0), "= 4 x stores"),
    ("fanout_pvcs", "PVCs after fan-out", _n(0), "= 4 x stores"),
    ("fanout_max_serial", "max member serial after fan-out", _n(0), "<= 4"),
    ("total_cpu_operator", "total: CPU s operator", _n(1), ""),
    ("total_cpu_apiserver", "total: CPU s kube-apiserver", _n(1), ""),
    ("total_cpu_etcd", "total: CPU s etcd", _n(1), ""),
    ("total_peak_mb_operator", "total: peak RSS MB operator", _n(0), ""),
    ("total_peak_mb_apiserver", "total: peak RSS MB kube-apiserver", _n(0), ""),
    ("total_peak_mb_etcd", "total: peak RSS MB etcd", _n(0), ""),
    ("reconcile_errors", "reconcile passes failed", _n(0), "0"),
]


def one_line(row: Row) -> str:
    """One size's numbers on one line, in the report's order."""
    cells = [f"{key}={fmt(row[key])}" for key, _, fmt, _ in REPORT if key in row]
    return f"BENCH scale stores={row['stores']:.0f} " + " ".join(cells)


def markdown_table(rows: list[Row]) -> list[str]:
    """A metric per line, a column per size, the target last: sizes side by side read better than 40 columns."""
    lines = [
        "| metric | " + " | ".join(f"{row['stores']:.0f} stores" for row in rows) + " | target |",
        "|---|" + "---:|" * len(rows) + "---|",
    ]
    for key, label, fmt, target in REPORT:
        cells = [fmt(row[key]) if key in row else "-" for row in rows]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target} |")
    return lines


@pytest.fixture(scope="module")
def scale_rows() -> Iterator[list[Row]]:
    """Collects every size's row and prints the table once all sizes ran (or failed part-way)."""
    rows: list[Row] = []
    yield rows
    if rows:
        print()
        for line in markdown_table(rows):
            print("BENCH", line)


@pytest.mark.cluster
@pytest.mark.timeout(0)  # each phase carries its own deadline, scaled to the size
@pytest.mark.parametrize("stores", SIZES, ids=lambda n: f"{n}stores")
def test_scale(stores: int, tmp_path: Path, scale_rows: list[Row]) -> None:
    row: Row = {"stores": stores}
    scale_rows.append(row)
    problems: list[str] = []
    try:
        with scale_world(tmp_path, stores, row) as bench:
            phase_create(bench)
            census(bench, REPLICAS, "converged")
            phase_rest(bench)
            phase_restart(bench)
            phase_pod_deletions(bench)
            phase_fanout(bench)
            census(bench, FANOUT_REPLICAS, "fanout")
            phase_totals(bench)
            problems = bench.problems
    finally:
        print("\n" + one_line(row))
    assert not problems, f"{stores} stores: " + "; ".join(problems)
