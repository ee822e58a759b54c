"""Hypothesis strategies for ReplicatedStore specs, shared by the API tests and the planner tests.

`specs()` draws specs that are valid in full: the models accept them *and* `validate_spec` finds
nothing, by construction (a canary within the store, maxAge at least the interval, and so on). Every
part can be pinned, so a planner test can say "any valid spec with six members over three zones":

    @given(specs(replicas=st.just(6), zones=st.just(["zone-a", "zone-b", "zone-c"])))

`spec_bodies()` pairs a spec with a wire body that says the same thing, either in full or with
every default left out (as users write it), to prove the API server's defaults equal the models'.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

from phalanx.models import (
    DATA_VOLUME,
    DeletionPolicy,
    DisruptionBudgetSpec,
    DrillPodTemplate,
    DrillSpec,
    Duration,
    HealthGateSpec,
    PodTemplate,
    PodTemplateMetadata,
    Quantity,
    RecoverySource,
    RecoverySpec,
    ReplicatedStoreSpec,
    RetiredVolumePolicy,
    RetiredVolumesSpec,
    SnapshotSpec,
    StorageSpec,
    UpdateSpec,
    UpdateStrategy,
    ZoneFailurePolicy,
)

ZONE_POOL = ("zone-a", "zone-b", "zone-c", "zone-d", "us-east-1a", "europe-west4-b", "Z_1.rack")
"""Zone names: the test bed's, cloud-style ones, and one that uses every character a label allows."""


def durations(
    minimum: timedelta = timedelta(seconds=1), maximum: timedelta = timedelta(hours=48)
) -> st.SearchStrategy[Duration]:
    """Durations of whole milliseconds in [minimum, maximum]: the precision that specs use."""
    low, high = minimum // timedelta(milliseconds=1), maximum // timedelta(milliseconds=1)
    return st.integers(low, high).map(lambda ms: Duration.of(timedelta(milliseconds=ms)))


def quantities() -> st.SearchStrategy[Quantity]:
    """Positive sizes in every notation Kubernetes allows: suffixes, fractions, exponents, integers."""
    suffixed = st.tuples(st.integers(1, 4096), st.sampled_from(["Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"]))
    return st.one_of(
        suffixed.map(lambda pair: Quantity(f"{pair[0]}{pair[1]}")),
        st.integers(1, 99).map(lambda tenths: Quantity(f"{tenths / 10}Gi")),
        st.integers(1, 12).map(lambda exponent: Quantity(f"1e{exponent}")),
        st.integers(1, 2**40).map(Quantity),
    )


_container_names = st.from_regex(r"\A[a-z][a-z0-9-]{0,10}[a-z0-9]\Z")
_env_names = st.from_regex(r"\A[A-Z][A-Z0-9_]{0,15}\Z").filter(lambda name: not name.startswith("PHALANX_"))
_label_keys = st.sampled_from(["app", "tier", "app.kubernetes.io/name", "example.com/team"])
_label_values = st.from_regex(r"\A([A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?)?\Z")


@st.composite
def pod_templates(draw: st.DrawFn) -> PodTemplate:
    """A pod template that a member can run: containers with images, the data volume mounted."""
    names = draw(st.lists(_container_names, min_size=1, max_size=3, unique=True))
    scratch = draw(st.booleans())
    containers: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        container: dict[str, Any] = {"name": name, "image": f"example/{name}:1.{index}"}
        mounts = [{"name": DATA_VOLUME, "mountPath": "/data"}] if index == 0 else []
        if scratch:
            mounts.append({"name": "scratch", "mountPath": "/tmp"})
        if mounts:
            container["volumeMounts"] = mounts
        env = draw(st.lists(_env_names, max_size=3, unique=True))
        if env:
            container["env"] = [{"name": variable, "value": f"v{i}"} for i, variable in enumerate(env)]
        if draw(st.booleans()):
            container["ports"] = [{"name": "client", "containerPort": draw(st.integers(1, 65535))}]
        if draw(st.booleans()):
            container["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}}
        containers.append(container)
    pod: dict[str, Any] = {"containers": containers}
    if scratch:
        pod["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    if draw(st.booleans()):
        pod["tolerations"] = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    metadata = PodTemplateMetadata(
        labels=draw(st.dictionaries(_label_keys, _label_values, max_size=3)),
        annotations=draw(st.dictionaries(_label_keys, st.text(max_size=20), max_size=2)),
    )
    return PodTemplate(metadata=metadata, spec=pod)


VERIFY = DrillPodTemplate(spec={"containers": [{"name": "check", "image": "example/check:1", "args": ["--data"]}]})
"""A restore drill's verification pod: one container that checks the data it finds at /data."""


@st.composite
def drill_specs(draw: st.DrawFn, every: Duration) -> DrillSpec:
    """Restore drills no more often than snapshots are taken (``every``), checked by a pod or not."""
    return DrillSpec(
        interval=draw(durations(minimum=every, maximum=every * 4)),
        verify=draw(st.none() | st.just(VERIFY)),
        timeout=draw(durations(minimum=timedelta(seconds=10), maximum=timedelta(hours=1))),
    )


@st.composite
def snapshot_specs(draw: st.DrawFn) -> SnapshotSpec:
    interval = draw(durations(minimum=timedelta(seconds=5), maximum=timedelta(hours=24)))
    max_age = draw(st.none() | durations(minimum=interval, maximum=interval * 10))
    return SnapshotSpec(
        volume_snapshot_class_name=draw(st.none() | st.sampled_from(["phalanx-sim", "csi.example.com-snap"])),
        interval=interval,
        keep=draw(st.integers(1, 100)),
        max_age=max_age,
        drill=draw(st.none() | drill_specs(interval)),
    )


@st.composite
def recovery_specs(draw: st.DrawFn, zones: list[str] | None) -> RecoverySpec:
    member_grace = draw(durations(minimum=timedelta(seconds=1), maximum=timedelta(minutes=30)))
    # Redistributing a lost zone needs a surviving one to rebuild in.
    policies = list(ZoneFailurePolicy) if zones is None or len(zones) >= 2 else [ZoneFailurePolicy.WAIT]
    return RecoverySpec(
        source=draw(st.sampled_from(RecoverySource)),
        member_failure_grace=member_grace,
        zone_failure=draw(st.sampled_from(policies)),
        zone_failure_grace=draw(durations(minimum=member_grace, maximum=timedelta(hours=2))),
    )


@st.composite
def retired_volume_specs(draw: st.DrawFn) -> RetiredVolumesSpec:
    return RetiredVolumesSpec(
        policy=draw(st.none() | st.sampled_from(RetiredVolumePolicy)),
        delete_after=draw(
            st.just(Duration.parse("0s")) | durations(minimum=timedelta(seconds=1), maximum=timedelta(days=3))
        ),
    )


@st.composite
def update_specs(draw: st.DrawFn, replicas: int) -> UpdateSpec:
    gate = HealthGateSpec(min_ready_seconds=draw(st.integers(0, 3600)), consecutive_checks=draw(st.integers(1, 100)))
    deadline_floor = timedelta(seconds=max(10, gate.min_ready_seconds + 1))
    return UpdateSpec(
        strategy=draw(st.sampled_from(UpdateStrategy)),
        max_unavailable_per_zone=draw(st.integers(1, replicas)),
        canary=draw(st.integers(0, replicas)),
        health_gate=gate,
        progress_deadline=draw(durations(minimum=deadline_floor, maximum=deadline_floor + timedelta(hours=2))),
        paused=draw(st.booleans()),
    )


@st.composite
def specs(
    draw: st.DrawFn,
    replicas: st.SearchStrategy[int] | None = None,
    zones: st.SearchStrategy[list[str] | None] | None = None,
    snapshots: st.SearchStrategy[SnapshotSpec | None] | None = None,
) -> ReplicatedStoreSpec:
    """Fully valid specs; pin `replicas`, `zones` or `snapshots` with a strategy of your own."""
    count = draw(replicas if replicas is not None else st.integers(1, 12))
    zone_list = draw(
        zones
        if zones is not None
        else st.none() | st.lists(st.sampled_from(ZONE_POOL), min_size=1, max_size=4, unique=True)
    )
    snapshot_spec = draw(snapshots if snapshots is not None else st.none() | snapshot_specs())
    policies = list(DeletionPolicy) if snapshot_spec is not None else [DeletionPolicy.RETAIN, DeletionPolicy.DELETE]
    return ReplicatedStoreSpec(
        replicas=count,
        zones=zone_list,
        template=draw(pod_templates()),
        storage=StorageSpec(size=draw(quantities()), storage_class_name=draw(st.none() | st.just("phalanx-sim"))),
        snapshots=snapshot_spec,
        recovery=draw(recovery_specs(zone_list)),
        updates=draw(update_specs(count)),
        disruption_budget=DisruptionBudgetSpec(max_unavailable=draw(st.integers(0, max(1, (count - 1) // 2)))),
        retired_volumes=draw(retired_volume_specs()),
        deletion_policy=draw(st.sampled_from(policies)),
        paused=draw(st.booleans()),
    )


def sparse_body(spec: ReplicatedStoreSpec) -> dict[str, Any]:
    """The spec as a user would write it: every field that equals its default left out."""
    return spec.model_dump(mode="json", exclude_defaults=True, exclude_none=True)


def spec_bodies() -> st.SearchStrategy[tuple[ReplicatedStoreSpec, dict[str, Any]]]:
    """A valid spec and a wire body for it, in full or sparse (defaults left to the API server)."""
    return st.tuples(specs(), st.booleans()).map(
        lambda pair: (pair[0], pair[0].to_wire() if pair[1] else sparse_body(pair[0]))
    )
