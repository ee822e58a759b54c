"""Prometheus metrics of the operator, served on ``PHALANX_METRICS_PORT`` (default 8080) at /metrics.

Side-effect free to import: the metrics live in their own registry, so tests and the operator can
read them without the process-wide default collectors. Every name here is documented in README.md.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
PlatformCollector(registry=REGISTRY)  # python_info: the convention every exporter follows


def _version() -> str:
    try:
        return metadata.version("phalanx")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


BUILD_INFO = Gauge(
    "phalanx_build_info",
    "Always 1; the labels say which Phalanx runs, on which Python (join on it to tell versions apart).",
    ["version", "python"],
    registry=REGISTRY,
)
BUILD_INFO.labels(_version(), platform.python_version()).set(1)

RECONCILE_SECONDS = Histogram(
    "phalanx_reconcile_duration_seconds",
    "Time of one observe-plan-act pass over a store.",
    ["namespace", "store"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILES = Counter(
    "phalanx_reconciles_total",
    "Reconcile passes, by outcome (ok, error).",
    ["namespace", "store", "outcome"],
    registry=REGISTRY,
)
MEMBERS = Gauge(
    "phalanx_members",
    "Members of a store, by zone and state (Ready, Starting, Pending, Restoring, Unavailable, Lost).",
    ["namespace", "store", "zone", "state"],
    registry=REGISTRY,
)
DESIRED = Gauge(
    "phalanx_store_desired_replicas", "spec.replicas of a store.", ["namespace", "store"], registry=REGISTRY
)
READY = Gauge("phalanx_store_ready_replicas", "Ready members of a store.", ["namespace", "store"], registry=REGISTRY)
STORE_CONDITION = Gauge(
    "phalanx_store_condition",
    "1 when the condition is True, 0 when False; no series while it is Unknown or not reported.",
    ["namespace", "store", "condition"],
    registry=REGISTRY,
)
ACTIONS = Counter(
    "phalanx_actions_total",
    "Actions taken on stores' children, by kind and outcome (ok, error).",
    ["namespace", "store", "action", "outcome"],
    registry=REGISTRY,
)
RECOVERIES = Counter(
    "phalanx_recoveries_total",
    "Lost members replaced, by the source of the replacement's data (Snapshot, Empty).",
    ["namespace", "store", "source"],
    registry=REGISTRY,
)
RECOVERY_SECONDS = Histogram(
    "phalanx_recovery_duration_seconds",
    "From a loss being acted on to the replacement being ready, by source (Snapshot, Empty).",
    ["source"],
    registry=REGISTRY,
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
SNAPSHOT_AGE = Gauge(
    "phalanx_snapshot_age_seconds",
    "Age of the newest ready snapshot of a store.",
    ["namespace", "store"],
    registry=REGISTRY,
)
SNAPSHOT_LAST_SUCCESS = Gauge(
    "phalanx_snapshot_last_success_timestamp_seconds",
    "When the newest ready snapshot of a store was taken (Unix time): alert on time() minus it, which "
    "keeps growing even if the operator stops updating its metrics, where the age would freeze.",
    ["namespace", "store"],
    registry=REGISTRY,
)
DRILLS = Counter(
    "phalanx_drills_total",
    "Restore drills that ended, by result (Succeeded, Failed): a snapshot restored into a throwaway claim "
    "and, with spec.snapshots.drill.verify, checked by a pod.",
    ["namespace", "store", "result"],
    registry=REGISTRY,
)
DRILL_SECONDS = Histogram(
    "phalanx_drill_duration_seconds",
    "From a restore drill's start to its verdict, by result.",
    ["result"],
    registry=REGISTRY,
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
LAST_DRILL_SUCCESS = Gauge(
    "phalanx_last_drill_success_timestamp_seconds",
    "When a store's last successful restore drill ended (Unix time): alert on time() minus it, which "
    "grows when drills fail or stop running.",
    ["namespace", "store"],
    registry=REGISTRY,
)
RETIRED_VOLUMES = Gauge(
    "phalanx_retired_volumes",
    "Volumes of retired members a store still keeps (spec.retiredVolumes).",
    ["namespace", "store"],
    registry=REGISTRY,
)
RETIRED_VOLUME_BYTES = Gauge(
    "phalanx_retired_volume_bytes",
    "Storage requested by the volumes of retired members a store still keeps, in bytes.",
    ["namespace", "store"],
    registry=REGISTRY,
)
SNAPSHOTS = Gauge("phalanx_snapshots", "Ready snapshots of a store.", ["namespace", "store"], registry=REGISTRY)
ROLLOUT_MEMBERS = Gauge(
    "phalanx_rollout_members",
    "Members of a rollout in flight, by progress (updated: on the update revision and past the gate; total).",
    ["namespace", "store", "progress"],
    registry=REGISTRY,
)
ROLLOUT_STEPS = Counter(
    "phalanx_rollout_steps_total",
    "Rollout steps started (a canary or a batch of one zone), by strategy (InPlace, Replace).",
    ["namespace", "store", "strategy"],
    registry=REGISTRY,
)
ROLLOUT_STEP_SECONDS = Histogram(
    "phalanx_rollout_step_duration_seconds",
    "From a rollout step's start until its members passed the health gate, by strategy.",
    ["strategy"],
    registry=REGISTRY,
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
ROLLOUT_HALTS = Counter(
    "phalanx_rollout_halts_total",
    "Rollouts halted: a step whose members did not pass the health gate within progressDeadline.",
    ["namespace", "store"],
    registry=REGISTRY,
)
MEMBER_LOSSES = Gauge(
    "phalanx_member_losses_24h",
    "Members of a store lost (and replaced) in the last 24 hours (status.reliability).",
    ["namespace", "store"],
    registry=REGISTRY,
)
BLAST_RADIUS = Gauge(
    "phalanx_blast_radius_ratio",
    "Share of a store unavailable at once: of its members or of its zones, now or the worst in 24 hours.",
    ["namespace", "store", "of", "when"],
    registry=REGISTRY,
)
PREDICTED_RECOVERY = Gauge(
    "phalanx_recovery_predicted_seconds",
    "Expected time to rebuild one member now, by path (snapshot, empty).",
    ["namespace", "store", "path"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "phalanx_leader",
    "1 on the operator process that holds the lease and acts, 0 on a standby.",
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "phalanx_api_requests_total",
    "Writes the operator sent to the API server, by verb, resource, namespace and HTTP status code.",
    ["verb", "resource", "namespace", "code"],
    registry=REGISTRY,
)


def serve(port: int) -> None:
    """Serve /metrics on all interfaces in a background thread."""
    start_http_server(port, registry=REGISTRY)


Metric = Gauge | Counter | Histogram
_series: dict[tuple[str, str], set[tuple[Metric, tuple[str, ...]]]] = {}
"""Per store, every series set through ``of``: a store's series are found by its own labels, never
by scanning every store's (which made each pass cost O(stores))."""


def of(metric: Metric, namespace: str, store: str, *rest: str) -> Any:
    """``metric.labels(namespace, store, *rest)``, remembered as one of the store's series."""
    labels = (namespace, store, *rest)
    _series.setdefault((namespace, store), set()).add((metric, labels))
    return metric.labels(*labels)


def drop(metric: Metric, namespace: str, store: str, keep: set[tuple[str, ...]] | None = None) -> None:
    """Remove the store's series of ``metric`` (those whose further labels are not in ``keep``)."""
    own = _series.get((namespace, store), set())
    for entry in [e for e in own if e[0] is metric and (keep is None or e[1][2:] not in keep)]:
        own.discard(entry)
        metric.remove(*entry[1])


def forget_store(namespace: str, store: str) -> None:
    """Drop a deleted store's series, so dashboards do not show ghosts."""
    for metric, labels in _series.pop((namespace, store), set()):
        metric.remove(*labels)
