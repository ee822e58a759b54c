"""The API models: durations and quantities as users write them, defaults, aliases, strictness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from phalanx.models import (
    Condition,
    ConditionStatus,
    DeletionPolicy,
    Duration,
    MemberState,
    Quantity,
    RecoverySource,
    ReplicatedStoreSpec,
    ReplicatedStoreStatus,
    SnapshotSpec,
    StorageSpec,
    UpdateStrategy,
    ZoneFailurePolicy,
)
from tests.openapi import EXAMPLES
from tests.strategies import durations, quantities, sparse_body, specs

MINIMAL: dict[str, Any] = {
    "template": {"spec": {"containers": [{"name": "store", "image": "valkey/valkey:8.0"}]}},
    "storage": {"size": "1Gi"},
}

# ------------------------------------------------------------------------------------------ Duration


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("30s", 30, "30s"),
        ("5m", 300, "5m"),
        ("1h", 3600, "1h"),
        ("1h30m", 5400, "1h30m"),
        ("90m", 5400, "1h30m"),
        ("1.5h", 5400, "1h30m"),
        ("250ms", 0.25, "250ms"),
        ("1s500ms", 1.5, "1.5s"),
        ("0s", 0, "0s"),
        ("168h", 7 * 24 * 3600, "168h"),
        ("2h0m5s", 7205, "2h5s"),
    ],
)
def test_duration_parses_go_syntax_and_prints_it_back_shortest(text: str, seconds: float, canonical: str) -> None:
    duration = Duration.parse(text)
    assert duration.total_seconds() == seconds
    assert duration == timedelta(seconds=seconds)
    assert str(duration) == canonical


@pytest.mark.parametrize("text", ["", "30", "1d", "1w", "-5m", "5 m", "m5", "1.h", ".5s", "1H", "soon", "1" * 40 + "s"])
def test_duration_refuses_what_kubernetes_would_and_says_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match="for example 30s, 5m or 1h30m"):
        Duration.parse(text)


@given(durations(minimum=timedelta(0), maximum=timedelta(days=30)))
def test_duration_text_round_trips(duration: Duration) -> None:
    assert Duration.parse(str(duration)) == duration


def test_duration_is_a_timedelta_for_time_arithmetic() -> None:
    since = datetime(2024, 1, 1, tzinfo=UTC)
    grace = Duration.parse("30s")
    assert since + grace == datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC)
    assert timedelta(seconds=31) > grace


# ------------------------------------------------------------------------------------------ Quantity


@pytest.mark.parametrize(
    ("written", "size"),
    [
        ("10Gi", 10 * 2**30),
        ("500M", 500 * 10**6),
        ("1.5Gi", 3 * 2**29),
        ("1e9", 10**9),
        ("1E3", 1000),
        ("64Ki", 65536),
        ("2k", 2000),
        ("1024", 1024),
        (1024, 1024),
        ("0.5", 1),  # rounded up to a whole byte, as Kubernetes does
        (".5Ki", 512),
    ],
)
def test_quantity_parses_kubernetes_notation_into_bytes(written: str | int, size: int) -> None:
    assert Quantity(written).bytes == size


@pytest.mark.parametrize("written", ["", "10GB", "10gi", "Gi", "-1Gi", "+1Gi", "1.5.2", "10 Gi", "100m"])
def test_quantity_refuses_other_notations(written: str) -> None:
    with pytest.raises(ValueError, match="for example 10Gi"):
        Quantity(written)


def test_quantities_compare_by_value_but_keep_their_text() -> None:
    assert Quantity("1Gi") == Quantity("1024Mi")
    assert hash(Quantity("1Gi")) == hash(Quantity("1024Mi"))
    assert Quantity("1G") < Quantity("1Gi")
    assert str(Quantity("1024Mi")) == "1024Mi"


@given(quantities())
def test_quantity_goes_back_on_the_wire_as_written(quantity: Quantity) -> None:
    storage = StorageSpec(size=quantity)
    wire = storage.to_wire()["size"]
    assert str(wire) == str(quantity)
    assert StorageSpec.model_validate({"size": wire}) == storage


# ------------------------------------------------------------------------------------------ the spec


def test_a_minimal_spec_gets_the_documented_defaults() -> None:
    spec = ReplicatedStoreSpec.model_validate(MINIMAL)
    assert spec.replicas == 3
    assert spec.zones is None
    assert spec.snapshots is None
    assert spec.storage.storage_class_name is None
    assert spec.recovery.source is RecoverySource.SNAPSHOT
    assert spec.recovery.member_failure_grace == timedelta(seconds=30)
    assert spec.recovery.zone_failure is ZoneFailurePolicy.WAIT
    assert spec.recovery.zone_failure_grace == timedelta(minutes=5)
    assert spec.updates.strategy is UpdateStrategy.IN_PLACE
    assert (spec.updates.max_unavailable_per_zone, spec.updates.canary, spec.updates.paused) == (1, 1, False)
    assert (spec.updates.health_gate.min_ready_seconds, spec.updates.health_gate.consecutive_checks) == (10, 3)
    assert spec.updates.progress_deadline == timedelta(minutes=10)
    assert spec.disruption_budget.max_unavailable == 1
    assert spec.deletion_policy is DeletionPolicy.RETAIN
    assert spec.paused is False


def test_empty_snapshots_block_means_hourly_snapshots_kept_six_hours() -> None:
    snapshots = ReplicatedStoreSpec.model_validate({**MINIMAL, "snapshots": {}}).snapshots
    assert snapshots == SnapshotSpec()
    assert snapshots.interval == timedelta(hours=1)
    assert snapshots.keep == 6
    assert snapshots.max_age is None
    assert snapshots.effective_max_age() == timedelta(hours=6)
    assert SnapshotSpec(max_age=Duration.parse("2h")).effective_max_age() == timedelta(hours=2)


def test_wire_names_are_camel_case_and_python_names_snake_case() -> None:
    spec = ReplicatedStoreSpec.model_validate(
        {**MINIMAL, "storage": {"size": "1Gi", "storageClassName": "fast"}, "disruptionBudget": {"maxUnavailable": 0}}
    )
    assert spec.storage.storage_class_name == "fast"
    assert spec.disruption_budget.max_unavailable == 0
    built = ReplicatedStoreSpec(
        template=spec.template, storage=StorageSpec(size=Quantity("1Gi"), storage_class_name="fast")
    )
    wire = built.to_wire()
    assert wire["storage"] == {"size": "1Gi", "storageClassName": "fast"}
    assert set(wire["updates"]) == {
        "strategy",
        "maxUnavailablePerZone",
        "canary",
        "healthGate",
        "progressDeadline",
        "paused",
    }
    assert "zones" not in wire and "snapshots" not in wire  # absent, never null


def test_durations_can_be_given_as_timedelta_in_python() -> None:
    snapshots = SnapshotSpec(interval=timedelta(minutes=15))
    assert isinstance(snapshots.interval, Duration)
    assert snapshots.to_wire()["interval"] == "15m"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"replicas": "3"}, "replicas"),
        ({"replicas": True}, "replicas"),
        ({"replicas": 3.0}, "replicas"),
        ({"paused": "false"}, "paused"),
        ({"deletionPolicy": "retain"}, "deletionPolicy"),
        ({"replica": 3}, "replica"),
        ({"storage": {"size": "1Gi", "class": "x"}}, "class"),
    ],
)
def test_the_model_is_strict_about_types_and_names(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ReplicatedStoreSpec.model_validate({**MINIMAL, **patch})
    assert field in str(raised.value)


def test_specs_are_frozen() -> None:
    spec = ReplicatedStoreSpec.model_validate(MINIMAL)
    with pytest.raises(ValidationError):
        spec.replicas = 5  # type: ignore[misc]
    assert spec.model_copy(update={"replicas": 5}).replicas == 5


def test_the_pod_template_is_kept_as_written() -> None:
    pod = {
        "containers": [{"name": "s", "image": "i", "readinessProbe": {"exec": {"command": ["true"]}}}],
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "futureField": {"anything": [1, None]},
    }
    spec = ReplicatedStoreSpec.model_validate({**MINIMAL, "template": {"spec": pod}})
    assert spec.template.spec == pod
    assert spec.to_wire()["template"]["spec"] == pod


def test_enum_values_are_the_documented_words() -> None:
    assert [s.value for s in RecoverySource] == ["Snapshot", "Empty"]
    assert [z.value for z in ZoneFailurePolicy] == ["Wait", "Redistribute"]
    assert [u.value for u in UpdateStrategy] == ["InPlace", "Replace"]
    assert [d.value for d in DeletionPolicy] == ["Retain", "Snapshot", "Delete"]
    assert RecoverySource("Snapshot") == "Snapshot"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_every_example_parses(example: Any) -> None:
    document = yaml.safe_load(example.read_text())
    assert document["apiVersion"] == "phalanx.dev/v1alpha1" and document["kind"] == "ReplicatedStore"
    ReplicatedStoreSpec.model_validate(document["spec"])


@given(specs())
def test_full_and_sparse_wire_bodies_parse_back_to_the_same_spec(spec: ReplicatedStoreSpec) -> None:
    assert ReplicatedStoreSpec.model_validate(spec.to_wire()) == spec
    assert ReplicatedStoreSpec.model_validate(sparse_body(spec)) == spec


# ------------------------------------------------------------------------------------------ status

STATUS: dict[str, Any] = {
    "observedGeneration": 3,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "AllMembersReady",
            "message": "6/6 members ready",
            "lastTransitionTime": "2024-05-01T10:00:00Z",
            "observedGeneration": 3,
        }
    ],
    "phase": "Ready",
    "replicas": 6,
    "readyReplicas": 6,
    "updatedReplicas": 6,
    "readyDisplay": "6/6",
    "zonesDisplay": "3/3",
    "currentRevision": "7d9f",
    "updateRevision": "7d9f",
    "zones": [{"name": "zone-a", "members": 2, "ready": 2}],
    "members": [
        {
            "name": "orders-7",
            "zone": "zone-a",
            "node": "node-1",
            "volume": "orders-7",
            "revision": "7d9f",
            "state": "Ready",
            "seededFrom": "orders-snap-41",
            "since": "2024-05-01T09:58:00Z",
        }
    ],
    "snapshots": {"latest": "orders-snap-41", "latestTime": "2024-05-01T09:00:00Z", "count": 6},
    "lastRecovery": {
        "member": "orders-3",
        "replacement": "orders-7",
        "reason": "NodeLost",
        "source": "Snapshot",
        "snapshot": "orders-snap-41",
        "startedAt": "2024-05-01T09:57:00Z",
        "readyAt": "2024-05-01T09:58:00Z",
        "seconds": 60.0,
    },
    "rollout": {"zone": "zone-b", "replaced": 2, "total": 6},
    "kopf": {"progress": {"reconcile": {"retries": 1}}},
}


def test_a_full_status_round_trips() -> None:
    status = ReplicatedStoreStatus.model_validate(STATUS)
    assert status.members[0].state is MemberState.READY
    assert status.members[0].seeded_from == "orders-snap-41"
    assert status.conditions[0].status is ConditionStatus.TRUE
    assert status.last_recovery is not None and status.last_recovery.seconds == 60.0
    assert ReplicatedStoreStatus.model_validate(status.to_wire()) == status
    assert status.to_wire()["snapshots"]["latestTime"] == "2024-05-01T09:00:00Z"


def test_an_empty_status_is_valid() -> None:
    status = ReplicatedStoreStatus()
    assert status.to_wire() == {
        "conditions": [],
        "replicas": 0,
        "readyReplicas": 0,
        "updatedReplicas": 0,
        "lastSerial": 0,
        "zones": [],
        "members": [],
    }


@pytest.mark.parametrize(
    "condition",
    [
        {"type": "Ready", "status": "Yes", "reason": "R", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"},
        {
            "type": "Ready",
            "status": "True",
            "reason": "not camel",
            "message": "",
            "lastTransitionTime": "2024-01-01T00:00:00Z",
        },
        {"type": "Ready", "status": "True", "reason": "R", "message": ""},
    ],
)
def test_conditions_follow_metav1(condition: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Condition.model_validate(condition)


@given(st.sampled_from(list(MemberState)))
def test_member_states_are_text_on_the_wire(state: MemberState) -> None:
    status = ReplicatedStoreStatus.model_validate({"members": [{"name": "m-1", "zone": "z", "state": state.value}]})
    assert status.to_wire()["members"][0]["state"] == state.value
