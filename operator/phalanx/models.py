"""The ReplicatedStore API: spec and status as pydantic models.

This module is the single source of the API. `phalanx.crd` turns these models into the CRD's OpenAPI
schema (each field's docstring becomes its `kubectl explain` text, so they are written for users), and
`phalanx.validation` parses stored objects with them and adds the cross-field checks that a schema
cannot express. Everything downstream (observe, plan, build, act) reads these typed values instead of
digging in raw dicts.

The models check each field on its own: type, enum, bounds, pattern, required. They are at least as
strict as the generated OpenAPI schema, so what they accept the API server accepts. Rules that relate
fields to each other live in `phalanx.validation`; a few of them are also declared here as CEL
(`x-kubernetes-validations`) so that clusters which run CEL reject them at `kubectl apply`.

Python attributes are snake_case; the wire (aliases) is camelCase. Models are frozen: the planner
derives new values (`model_copy(update=...)`) instead of mutating shared ones.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from phalanx.units import Duration, Quantity

__all__ = [
    "CATEGORY",
    "DATA_VOLUME",
    "GROUP",
    "KIND",
    "MAX_NAME_LENGTH",
    "MAX_REPLICAS",
    "MAX_ZONES",
    "NAME_PATTERN",
    "NAME_RULES",
    "PLURAL",
    "RESERVED_ENV_PREFIX",
    "RESERVED_LABEL_PREFIX",
    "SHORT_NAME",
    "SINGULAR",
    "STORE_DESCRIPTION",
    "VERSION",
    "ZONE_LABEL",
    "AtLeast",
    "CelRule",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "DeletionPolicy",
    "DisruptionBudgetSpec",
    "DrillPodMetadata",
    "DrillPodTemplate",
    "DrillRecord",
    "DrillResult",
    "DrillSpec",
    "Duration",
    "HealthGateSpec",
    "MemberState",
    "MemberStatus",
    "PodTemplate",
    "PodTemplateMetadata",
    "Quantity",
    "RecoveryRecord",
    "RecoverySource",
    "RecoverySpec",
    "ReplicatedStoreSpec",
    "ReplicatedStoreStatus",
    "RolloutStatus",
    "SnapshotSpec",
    "SnapshotStatus",
    "StorageSpec",
    "StorePhase",
    "UpdateSpec",
    "UpdateStrategy",
    "ZoneFailurePolicy",
    "ZoneStatus",
]

GROUP: Final = "phalanx.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "replicatedstores"
SINGULAR: Final = "replicatedstore"
KIND: Final = "ReplicatedStore"
SHORT_NAME: Final = "rstore"
CATEGORY: Final = "phalanx"

RESERVED_LABEL_PREFIX: Final = "phalanx.dev/"
"""Labels under this prefix (`phalanx.dev/store`, `phalanx.dev/member`, `phalanx.dev/zone`) are Phalanx's."""
RESERVED_ENV_PREFIX: Final = "PHALANX_"
"""Environment variables with this prefix (`PHALANX_STORE`, `PHALANX_PEERS`, ...) are set by Phalanx."""
DATA_VOLUME: Final = "data"
"""The pod volume through which each member's persistent volume reaches the containers."""
ZONE_LABEL: Final = "topology.kubernetes.io/zone"
"""The node label that names a zone; Phalanx pins each member's pod to its zone with it."""

MAX_NAME_LENGTH: Final = 52
"""A store's name leaves room for `-<serial>` and Service suffixes within a 63-character DNS label."""
NAME_PATTERN: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""Store names are DNS-1035 labels, because Services are named after the store."""
MAX_REPLICAS: Final = 1000
MAX_ZONES: Final = 16

_DNS_SUBDOMAIN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_LABEL_VALUE: Final = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_CONDITION_TYPE: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
_CONDITION_REASON: Final = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

ResourceName = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN)]
ZoneName = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=63, pattern=_LABEL_VALUE)]
Text = Annotated[str, StringConstraints(strict=True)]
Count = Annotated[int, Field(strict=True, ge=0)]


# --------------------------------------------------------------------------------------------------
# Building blocks: CEL rules and bounds that the CRD and the operator both enforce.


@dataclass(frozen=True)
class CelRule:
    """A rule for API servers that run CEL (`x-kubernetes-validations`); the operator checks it too.

    The operator's own check lives in `phalanx.validation` (with a message that quotes the actual
    values); the unit tests evaluate every CEL rule against the same specs to keep the two in step.
    """

    rule: str
    message: str

    def as_schema(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


def cel(*rules: CelRule) -> dict[str, Any]:
    """JSON-schema extras that attach CEL rules to a model's node in the CRD."""
    return {"x-kubernetes-validations": [rule.as_schema() for rule in rules]}


@dataclass(frozen=True)
class AtLeast:
    """A lower bound on a `Duration` field: checked by the model and, as CEL, by the API server."""

    minimum: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        rule = CelRule(f"duration(self) >= duration('{self.minimum}')", f"must be at least {self.minimum}")
        json_schema.update(cel(rule))
        return json_schema

    def _check(self, value: Duration) -> Duration:
        if value < Duration.parse(self.minimum):
            raise ValueError(f"{value} is too short: use at least {self.minimum}")
        return value


def _positive(quantity: Quantity) -> Quantity:
    if quantity.bytes <= 0:
        raise ValueError(f"{quantity} is no space at all: give a size such as 10Gi")
    return quantity


def _label_value(value: str) -> str:
    if len(value) > 63 or not re.fullmatch(_LABEL_VALUE, value):
        raise ValueError(
            f"{value!r} is not a label value: use at most 63 letters, digits, '-', '_' or '.', "
            "beginning and ending with a letter or digit"
        )
    return value


LabelValue = Annotated[str, Field(strict=True), AfterValidator(_label_value)]

FreeFormMap = WithJsonSchema({"type": "object", "additionalProperties": True})
"""Schema of the template's label and annotation maps. A 1.20 API server reads "" in a map typed
`additionalProperties: {type: string}` as null and refuses it, yet empty label and annotation values are
valid Kubernetes: so the schema leaves these maps free-form; the models check the values and
`phalanx.validation` the keys."""


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"{item!r} is listed twice: list each zone once")
        seen.add(item)
    return items


class _Model(BaseModel):
    """Common configuration: camelCase on the wire, unknown fields refused, values frozen."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready body as the API server stores it: camelCase, absent fields left out."""
        return self.model_dump(mode="json", exclude_none=True)


# --------------------------------------------------------------------------------------------------
# Enumerations. Values are the text users write; member names are Python's.


class RecoverySource(enum.StrEnum):
    """Where a replacement member's data comes from."""

    SNAPSHOT = "Snapshot"
    EMPTY = "Empty"


class ZoneFailurePolicy(enum.StrEnum):
    """What Phalanx does with the members of a zone that is lost."""

    WAIT = "Wait"
    REDISTRIBUTE = "Redistribute"


class UpdateStrategy(enum.StrEnum):
    """How a member picks up a new template."""

    IN_PLACE = "InPlace"
    REPLACE = "Replace"


class DeletionPolicy(enum.StrEnum):
    """What happens to the members' volumes when the store is deleted."""

    RETAIN = "Retain"
    SNAPSHOT = "Snapshot"
    DELETE = "Delete"


class RetiredVolumePolicy(enum.StrEnum):
    """What becomes of a retired member's volume while the store lives."""

    RETAIN = "Retain"
    DELETE = "Delete"


class DrillResult(enum.StrEnum):
    """The verdict of a restore drill."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class StorePhase(enum.StrEnum):
    """One word for the store's state; conditions carry the detail."""

    PENDING = "Pending"
    READY = "Ready"
    DEGRADED = "Degraded"
    RECOVERING = "Recovering"
    UPDATING = "Updating"
    PAUSED = "Paused"
    INVALID = "Invalid"
    DELETING = "Deleting"


class MemberState(enum.StrEnum):
    """Where a member is in its life."""

    PENDING = "Pending"
    RESTORING = "Restoring"
    STARTING = "Starting"
    READY = "Ready"
    UNAVAILABLE = "Unavailable"
    LOST = "Lost"
    RETIRING = "Retiring"


class ConditionStatus(enum.StrEnum):
    """The status of a condition, as in every Kubernetes API."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(enum.StrEnum):
    """The condition types Phalanx reports (kstatus: Ready, Reconciling, Stalled; the rest its own)."""

    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    DEGRADED = "Degraded"
    ZONES_BALANCED = "ZonesBalanced"
    SNAPSHOTS_FRESH = "SnapshotsFresh"
    RESTORE_VERIFIED = "RestoreVerified"
    FOREIGN_OBJECTS = "ForeignObjects"
    VOLUMES_MATCH_SPEC = "VolumesMatchSpec"
    RECOVERY_WITHIN_OBJECTIVE = "RecoveryWithinObjective"


# --------------------------------------------------------------------------------------------------
# Spec


class PodTemplateMetadata(_Model):
    """Labels and annotations for every member's pod."""

    labels: Annotated[dict[str, LabelValue], FreeFormMap] = Field(default_factory=dict)
    """Labels added to every member's pod, as text. Keys under `phalanx.dev/` are Phalanx's own and are
    refused."""

    annotations: Annotated[dict[str, Text], FreeFormMap] = Field(default_factory=dict)
    """Annotations added to every member's pod, as text. Keys under `phalanx.dev/` are Phalanx's own."""


class PodTemplate(_Model):
    """The pod template of every member, as in a StatefulSet or a Deployment."""

    metadata: PodTemplateMetadata = Field(default_factory=PodTemplateMetadata)
    """Labels and annotations for the members' pods."""

    spec: dict[str, Any]
    """A Kubernetes PodSpec: containers, init containers, volumes, probes, resources, tolerations,
    affinity and so on, exactly as in a Deployment's pod template. Phalanx adds to it: the volume
    `data` (the member's persistent volume: mount it in your containers), the environment variables
    PHALANX_STORE, PHALANX_MEMBER, PHALANX_ZONE, PHALANX_PEERS and PHALANX_SEEDED_FROM, the labels
    `phalanx.dev/*`, and a node affinity that pins the pod to its member's zone. Do not set these
    yourself, nor `nodeName`."""


class StorageSpec(_Model):
    """The persistent volume of each member."""

    size: Annotated[Quantity, AfterValidator(_positive)]
    """Size of each member's volume, as a Kubernetes quantity (for example 10Gi or 500M). The volume
    reaches the pod as the volume named `data`; mount it with a volumeMount of that name."""

    storage_class_name: ResourceName | None = None
    """StorageClass of the members' volumes. Omit it to use the cluster's default StorageClass. The
    class should bind volumes where the pod is scheduled (volumeBindingMode WaitForFirstConsumer), so
    that a volume is made in its member's zone."""


class DrillPodMetadata(_Model):
    """Labels and annotations for a restore drill's verification pod."""

    labels: Annotated[dict[str, LabelValue], FreeFormMap] = Field(default_factory=dict)
    """Labels added to the verification pod, as text. Keys under `phalanx.dev/` are Phalanx's own and
    are refused."""

    annotations: Annotated[dict[str, Text], FreeFormMap] = Field(default_factory=dict)
    """Annotations added to the verification pod, as text. Keys under `phalanx.dev/` are Phalanx's own."""


class DrillPodTemplate(_Model):
    """The pod that checks a restore drill's copy of the data; its exit code is the verdict."""

    metadata: DrillPodMetadata = Field(default_factory=DrillPodMetadata)
    """Labels and annotations for the verification pod."""

    spec: dict[str, Any]
    """A Kubernetes PodSpec whose containers check the restored data and exit: all exiting 0 says the
    copy is good, any other exit that it is not. Phalanx adds to it: the volume `data` (the restored
    copy, read-only: mounted at /data in every container that does not mount it itself, and read-only
    wherever it is mounted), the environment variables PHALANX_STORE, PHALANX_ZONE and
    PHALANX_SNAPSHOT (the snapshot restored), restartPolicy Never, the labels `phalanx.dev/*`, and a
    node affinity that pins the pod to the drill's zone. Do not set these yourself, nor `nodeName`."""


class DrillSpec(_Model):
    """Restore drills. A snapshot that has never been restored is a hope, not a backup: every
    `interval`, Phalanx restores the newest usable snapshot (ready, of this store, younger than
    maxAge: the one a lost member would be seeded from) into a throwaway claim in one of the store's
    zones (the next zone each time), optionally checks it with a pod of yours, records the verdict in
    status.lastDrill and the condition RestoreVerified, and deletes the claim and the pod. Member
    volumes are never touched."""

    interval: Annotated[Duration, AtLeast("5s")] = Duration.parse("24h")
    """How often a drill runs, counted from the end of the last one (for example 24h). Must be at
    least snapshots.interval: drilling more often than snapshots are taken would only restore the same
    snapshot again. Drills wait while the store is not healthy (a member not Ready, or one being
    created, replaced or rolled out: no load is added during a recovery) and stop with spec.paused."""

    verify: DrillPodTemplate | None = None
    """A pod that checks the restored data, such as an engine's own consistency check; its exit code
    is the verdict. Omit it to check that the snapshot restores: the volume is provisioned from it and
    its claim binds."""

    timeout: Annotated[Duration, AtLeast("10s")] = Duration.parse("15m")
    """How long a drill may take, from its claim's creation until the claim is bound and the
    verification pod has exited: beyond it, the drill fails."""


class SnapshotSpec(_Model):
    """Regular CSI VolumeSnapshots of healthy members. They seed replacement members, so that a new
    member only catches up the changes since the snapshot instead of copying everything from peers."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                "!has(self.maxAge) || duration(self.maxAge) >= duration(self.interval)",
                "maxAge must be at least interval: a snapshot has to stay usable until the next one is taken",
            ),
            CelRule(
                "!has(self.drill) || duration(self.drill.interval) >= duration(self.interval)",
                "drill.interval must be at least interval: a drill more often would restore the same snapshot again",
            ),
        )
    )

    volume_snapshot_class_name: ResourceName | None = None
    """VolumeSnapshotClass to take snapshots with. Omit it to use the cluster's default class for the
    volumes' CSI driver."""

    interval: Annotated[Duration, AtLeast("5s")] = Duration.parse("1h")
    """How often a snapshot is taken, as a duration (for example 30m or 1h). Each snapshot is taken of
    one ready member, round-robin over the zones."""

    keep: Annotated[int, Field(strict=True, ge=1, le=100)] = 6
    """How many ready snapshots to keep; older ones are deleted."""

    max_age: Annotated[Duration, AtLeast("5s")] | None = None
    """Snapshots older than this are deleted and never used to seed a member (an old snapshot would
    leave too much to catch up). Must be at least `interval`. Default: interval times keep."""

    drill: DrillSpec | None = None
    """Restore drills: prove regularly that the newest snapshot restores (and, with a pod of yours,
    that the restored data is good), before a recovery depends on it. Omit it for no drills."""

    def effective_max_age(self) -> Duration:
        """`maxAge`, or interval times keep when it is not set."""
        return self.max_age if self.max_age is not None else Duration.of(self.interval * self.keep)


class RecoverySpec(_Model):
    """How Phalanx replaces lost members."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                "duration(self.zoneFailureGrace) >= duration(self.memberFailureGrace)",
                "zoneFailureGrace must be at least memberFailureGrace: a zone is judged lost only after its members",
            )
        )
    )

    source: RecoverySource = RecoverySource.SNAPSHOT
    """Where a replacement member's data comes from. `Snapshot`: restore its volume from the freshest
    ready snapshot younger than snapshots.maxAge, so it only catches up the changes since; when there is
    no such snapshot (or no snapshots are configured), fall back to an empty volume. `Empty`: always
    start from an empty volume and copy everything from peers."""

    member_failure_grace: Annotated[Duration, AtLeast("1s")] = Duration.parse("30s")
    """How long a member's node may be NotReady (or gone), or its claim missing, before Phalanx
    replaces the member; a volume whose PersistentVolume is lost is replaced at once. A member whose
    pod is merely not ready on a healthy node (a crash loop, a failing probe) is reported Unavailable
    and Degraded but not replaced: that is more often a bad template or a bad engine than bad data,
    and replacing it would copy the fault onto a new volume (rolling back the template is the fix)."""

    zone_failure: ZoneFailurePolicy = ZoneFailurePolicy.WAIT
    """What to do when every member of a zone is unavailable. `Wait`: keep the zone's members and wait
    for the zone to return. `Redistribute`: after zoneFailureGrace, rebuild the zone's members in the
    surviving zones, and move them back once the zone has returned."""

    objective: Annotated[Duration, AtLeast("1s")] | None = None
    """The recovery time the store must not outgrow (for example 10m): when rebuilding a member from
    empty (the path taken when no usable snapshot exists) is predicted to take longer, the condition
    RecoveryWithinObjective turns False, before a failure shows it. The prediction uses the volume
    size and the operator's rates (PHALANX_RESTORE_RATE, PHALANX_CATCHUP_RATE)."""

    zone_failure_grace: Annotated[Duration, AtLeast("1s")] = Duration.parse("5m")
    """How long every member of a zone may be unavailable before the zone counts as lost. Must be at
    least memberFailureGrace."""


class HealthGateSpec(_Model):
    """When a replaced member counts as healthy, so that a rollout may go on."""

    min_ready_seconds: Annotated[int, Field(strict=True, ge=0, le=3600)] = 10
    """Seconds a new member must have been ready before it is checked."""

    consecutive_checks: Annotated[int, Field(strict=True, ge=1, le=100)] = 3
    """How many health checks in a row must pass; one failure starts the count again."""


class UpdateSpec(_Model):
    """How members pick up a changed template: zone by zone, canary first, gated on health."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                "duration(self.progressDeadline) > duration(string(self.healthGate.minReadySeconds) + 's')",
                "progressDeadline must be longer than healthGate.minReadySeconds",
            )
        )
    )

    strategy: UpdateStrategy = UpdateStrategy.IN_PLACE
    """`InPlace`: replace the member's pod, keeping its volume. `Replace`: create a new member seeded
    from a fresh snapshot, then retire the old member once the new one is healthy."""

    max_unavailable_per_zone: Annotated[int, Field(strict=True, ge=1, le=MAX_REPLICAS)] = 1
    """At most this many members of one zone are updated at a time, and only one zone at a time. A
    rollout never takes away the majority of ready members."""

    canary: Annotated[int, Field(strict=True, ge=0, le=MAX_REPLICAS)] = 1
    """How many members are updated first, alone, and must pass the health gate before the rest
    follow. 0 updates without a canary. Must not exceed replicas."""

    health_gate: HealthGateSpec = Field(default_factory=HealthGateSpec)
    """When an updated member counts as healthy."""

    progress_deadline: Annotated[Duration, AtLeast("10s")] = Duration.parse("10m")
    """How long one step of a rollout may wait for its member to pass the health gate. Past it, the
    rollout stops and the store is marked Stalled until the template is changed or the member heals."""

    paused: StrictBool = False
    """Pause rollouts: no new step starts until this is false again (the step in flight completes).
    Recovery and snapshots go on. The store's annotation `phalanx.dev/rollout-paused: "true"` pauses
    too, for imperative use beside a GitOps-managed spec."""

    zone_order: (
        Annotated[
            list[ZoneName],
            Field(max_length=MAX_ZONES, json_schema_extra={"x-kubernetes-list-type": "set"}),
            AfterValidator(_unique),
        ]
        | None
    ) = None
    """The order in which zones are updated, one at a time; zones not listed follow, by name.
    Default: by name."""


class RetiredVolumesSpec(_Model):
    """What becomes of the volume of a member that left the store: one lost and replaced, one retired
    when the store shrank or moved a member to another zone. Such a volume may hold the only copy of
    data written while the store was short of a member, so it goes only when this says so, and only
    once the store is whole again (every member Ready)."""

    policy: RetiredVolumePolicy | None = None
    """`Retain`: keep every retired volume until you delete it. `Delete`: delete it once the member
    that replaced it (for a member that left without a replacement: every member) has been Ready for
    `deleteAfter`, counted from the member's retirement at the earliest, and every member is Ready.
    Omit it to follow deletionPolicy: `Delete` for a store whose deletionPolicy is Delete, `Retain`
    otherwise."""

    delete_after: Duration = Duration.parse("0s")
    """With policy `Delete`: how long a retired volume is kept after its replacement became Ready
    (for example 24h), so that a replacement that fails soon after can still be rebuilt from it.
    0s deletes it as soon as the store is whole."""

    def effective_policy(self, deletion: DeletionPolicy) -> RetiredVolumePolicy:
        """`policy`, or what deletionPolicy implies when it is not set."""
        if self.policy is not None:
            return self.policy
        return RetiredVolumePolicy.DELETE if deletion is DeletionPolicy.DELETE else RetiredVolumePolicy.RETAIN


class DisruptionBudgetSpec(_Model):
    """The PodDisruptionBudget that protects the store from voluntary evictions, such as node drains."""

    max_unavailable: Annotated[int, Field(strict=True, ge=0, le=MAX_REPLICAS)] = 1
    """At most this many members may be evicted at once; 0 blocks evictions. It must leave a majority
    of members ready: at most (replicas - 1) / 2, rounded down; 1 is always allowed."""


class ReplicatedStoreSpec(_Model):
    """The desired state of a replicated store: its members, where they run, and how Phalanx keeps
    their data safe."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                "self.updates.canary <= self.replicas",
                "updates.canary must not exceed replicas",
            ),
            CelRule(
                "self.disruptionBudget.maxUnavailable <= 1 || "
                "self.disruptionBudget.maxUnavailable <= (self.replicas - 1) / 2",
                "disruptionBudget.maxUnavailable must leave a majority of members: at most (replicas - 1) / 2",
            ),
            CelRule(
                "self.recovery.zoneFailure != 'Redistribute' || !has(self.zones) || size(self.zones) >= 2",
                "recovery.zoneFailure Redistribute needs at least two zones",
            ),
            CelRule(
                "self.deletionPolicy != 'Snapshot' || has(self.snapshots)",
                "deletionPolicy Snapshot needs spec.snapshots to take the final snapshot with",
            ),
        )
    )

    replicas: Annotated[int, Field(strict=True, ge=1, le=MAX_REPLICAS)] = 3
    """Number of members. They are spread evenly over the zones: zone sizes differ by at most one."""

    zones: (
        Annotated[
            list[ZoneName],
            Field(min_length=1, max_length=MAX_ZONES, json_schema_extra={"x-kubernetes-list-type": "set"}),
            AfterValidator(_unique),
        ]
        | None
    ) = None
    """Zones to spread the members over: values of the nodes' topology.kubernetes.io/zone label. Omit
    it to use every zone that has schedulable nodes. A member's zone is part of its identity: its
    volume stays there."""

    template: PodTemplate
    """Pod template of every member."""

    storage: StorageSpec
    """Each member's persistent volume."""

    snapshots: SnapshotSpec | None = None
    """Snapshot policy. Omit it to take no snapshots: replacement members then start empty and copy
    everything from their peers. `snapshots: {}` takes hourly snapshots with the default class."""

    recovery: RecoverySpec = Field(default_factory=RecoverySpec)
    """How lost members are replaced."""

    updates: UpdateSpec = Field(default_factory=UpdateSpec)
    """How members pick up a changed template."""

    disruption_budget: DisruptionBudgetSpec = Field(default_factory=DisruptionBudgetSpec)
    """Protection against voluntary evictions (node drains)."""

    retired_volumes: RetiredVolumesSpec = Field(default_factory=RetiredVolumesSpec)
    """What becomes of retired members' volumes while the store lives (deletionPolicy says what
    becomes of every volume when the store is deleted)."""

    deletion_policy: DeletionPolicy = DeletionPolicy.RETAIN
    """What happens to the members' volumes when the store is deleted. `Retain`: keep them (a store
    re-created under the same name adopts them). `Snapshot`: take a final snapshot of every member's
    volume (kept after the store is gone, labelled phalanx.dev/final), then delete the volumes once
    every snapshot is ready. `Delete`: delete the volumes. Data is never deleted unless this says so."""

    paused: StrictBool = False
    """Stop every action on the store: no member is created, replaced, updated or deleted, and no
    snapshot is taken. Status is still reported. For maintenance by hand."""


STORE_DESCRIPTION: Final = (
    "A replicated stateful store run by Phalanx: members spread evenly over zones, each with its own "
    "persistent volume, snapshotted regularly; lost members are replaced from the freshest snapshot, "
    "and template changes roll out zone by zone, canary first, gated on health."
)
"""The resource's own description (the top of `kubectl explain replicatedstore`)."""

NAME_RULES: Final = (
    CelRule(
        f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
        f"metadata.name must be at most {MAX_NAME_LENGTH} characters: member and Service names are built from it",
    ),
    CelRule(
        f"self.metadata.name.matches('{NAME_PATTERN}')",
        "metadata.name must start with a letter and hold only lowercase letters, digits and '-' "
        "(Services are named after the store)",
    ),
)
"""Rules on the store's name, which a spec schema cannot see; `phalanx.validation` checks them too."""


# --------------------------------------------------------------------------------------------------
# Status


class Condition(_Model):
    """One aspect of the store's state, in the format of every Kubernetes API (metav1.Condition)."""

    type: Annotated[str, StringConstraints(strict=True, max_length=316, pattern=_CONDITION_TYPE)]
    """Ready, Reconciling, Stalled, Degraded, ZonesBalanced or SnapshotsFresh."""

    status: ConditionStatus
    """True, False or Unknown."""

    reason: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=1024, pattern=_CONDITION_REASON)]
    """Why the condition has its status, in one CamelCase word."""

    message: Annotated[str, StringConstraints(strict=True, max_length=32768)]
    """What is going on, for people."""

    last_transition_time: datetime
    """When the status last changed."""

    observed_generation: Count | None = None
    """The store's generation that the condition was computed from."""


class ZoneStatus(_Model):
    """Members of one zone."""

    name: Text
    """The zone's name: a value of the nodes' topology.kubernetes.io/zone label."""

    members: Count
    """Members placed in the zone."""

    ready: Count
    """Members of the zone that are ready."""

    down_since: datetime | None = None
    """Since when the zone has had no ready node (absent while it has one): a zone whose nodes
    vanished is judged lost only zoneFailureGrace after this."""

    returned_at: datetime | None = None
    """When the zone last came back from having no ready node. Its nodes still down then are waited
    for (their members are not replaced) until they are back or zoneFailureGrace has passed since."""


class MemberStatus(_Model):
    """One member of the store: a pod and its volume, pinned to a zone."""

    name: Text
    """The member's name, `<store>-<serial>`; a serial is never reused."""

    zone: Text
    """The member's zone."""

    state: MemberState
    """Pending, Restoring (volume being restored from a snapshot), Starting, Ready, Unavailable (within
    recovery.memberFailureGrace), Lost (being replaced) or Retiring (replaced, being removed)."""

    node: Text | None = None
    """The node the member's pod runs on."""

    volume: Text | None = None
    """The PersistentVolume bound to the member's claim (the claim is named as the member)."""

    revision: Text | None = None
    """The template revision of the member's pod."""

    seeded_from: Text | None = None
    """The VolumeSnapshot the member's volume was restored from; absent when it started empty."""

    since: datetime | None = None
    """When the member entered its state."""


class SnapshotStatus(_Model):
    """The store's snapshots."""

    latest: Text | None = None
    """The newest ready VolumeSnapshot."""

    latest_time: datetime | None = None
    """When the newest ready snapshot was taken."""

    count: Count = 0
    """Ready snapshots kept."""

    failures: Count = 0
    """Attempts in a row that failed (the retry backoff doubles with each, up to the interval)."""

    last_failure: Text | None = None
    """The last failed VolumeSnapshot counted in ``failures``."""


class LossEvent(_Model):
    """A member lost (and replaced) within the reliability window."""

    member: Text
    """The member lost."""
    zone: Text
    """Its zone."""
    at: datetime
    """When its replacement was started."""
    reason: Text
    """NodeLost, NodeDeleted, VolumeLost, VolumeDeleted, RestoreFailed or ZoneLost."""


class RecoveryTime(_Model):
    """How long one replacement took, from acting on the loss to the replacement Ready."""

    member: Text
    """The replacement."""
    source: RecoverySource
    """Where its data came from: Snapshot or Empty."""
    seconds: Annotated[float, Field(ge=0)]
    """From acting on the loss to the replacement Ready."""
    at: datetime
    """When it became ready."""


class BlastRadius(_Model):
    """How much of the store was unavailable at once, in percent."""

    members: Annotated[int, Field(strict=True, ge=0, le=100)] = 0
    """Members not ready, over the desired replicas."""
    zones: Annotated[int, Field(strict=True, ge=0, le=100)] = 0
    """Zones of the store where no member serves, over the store's zones."""
    at: datetime | None = None
    """When it was seen (the worst in the window)."""


class RecoverySummary(_Model):
    """Recovery times within the window, for one source."""

    source: RecoverySource
    """Snapshot or Empty."""
    count: Count = 0
    """Recoveries from that source in the window."""
    median_seconds: Annotated[float, Field(ge=0)] = 0
    """Their median time."""
    max_seconds: Annotated[float, Field(ge=0)] = 0
    """Their longest time."""


class PredictedRecovery(_Model):
    """What rebuilding one member would take now, from the volume size and the recovery rates."""

    from_snapshot_seconds: Annotated[float, Field(ge=0)] | None = None
    """Restoring the newest usable snapshot (absent without one); the changes since it are caught up
    from peers on top."""
    from_empty_seconds: Annotated[float, Field(ge=0)]
    """Copying the whole volume from peers."""


class ReliabilityStatus(_Model):
    """The three numbers of reliability, over the last 24 hours: how often members fail, how much of
    the store a failure takes, and how long recovery takes. Written only when one of them changes."""

    window: Text = "24h"
    """The span the numbers cover."""
    losses: list[LossEvent] = Field(default_factory=list)
    """Members lost within the window, oldest first (the newest 20 kept)."""
    losses_in_window: Count = 0
    """How many members were lost within the window."""
    now: BlastRadius = Field(default_factory=BlastRadius)
    """Unavailable at this moment."""
    worst: BlastRadius | None = None
    """The most unavailable at once within the window."""
    recoveries: list[RecoveryTime] = Field(default_factory=list)
    """Recoveries completed within the window, oldest first (the newest 20 kept)."""
    summary: list[RecoverySummary] = Field(default_factory=list)
    """Median and maximum recovery time within the window, by source."""
    predicted: PredictedRecovery | None = None
    """The expected time to rebuild one member now."""


class RetiredVolumesStatus(_Model):
    """Volumes of members that left the store, kept (spec.retiredVolumes)."""

    count: Count = 0
    """Retired members' volumes that still exist."""

    bytes: Count = 0
    """The storage they request, in bytes."""

    next_deletion: datetime | None = None
    """When the policy deletes the next of them, as far as the store is whole (absent: none is due)."""


class RecoveryRecord(_Model):
    """What happened in the last recovery: what was lost, why, where the data came from, how long."""

    member: Text
    """The member that was lost."""

    reason: Text
    """Why it was replaced: NodeLost, NodeDeleted, VolumeLost, VolumeDeleted, RestoreFailed or ZoneLost,
    then a colon and the details."""

    source: RecoverySource
    """Where the replacement's data came from: Snapshot or Empty."""

    started_at: datetime
    """When the replacement was started."""

    replacement: Text | None = None
    """The member that replaced it."""

    snapshot: Text | None = None
    """The VolumeSnapshot the replacement was restored from."""

    ready_at: datetime | None = None
    """When the replacement became ready."""

    seconds: Annotated[float, Field(ge=0)] | None = None
    """Recovery time: seconds from the start of the replacement until it was ready."""


class DrillRecord(_Model):
    """The last restore drill: which snapshot was restored, where, and whether the copy was good."""

    name: Text
    """The drill's claim and verification pod, `<store>-drill-<time>`: deleted once it has ended."""

    snapshot: Text
    """The VolumeSnapshot restored."""

    zone: Text
    """The zone it was restored in (drills rotate over the store's zones)."""

    started_at: datetime
    """When its claim was created."""

    finished_at: datetime
    """When its verdict was reached."""

    seconds: Annotated[float, Field(ge=0)]
    """From start to verdict, in seconds."""

    result: DrillResult
    """Succeeded or Failed."""

    reason: Text
    """Restored (the claim bound) or Verified (and the verification pod exited 0); RestoreFailed (not
    bound within the timeout, or its volume lost), VerifyFailed (the pod exited non-zero),
    VerifyTimedOut or VerifyNotStarted."""

    message: Text
    """What happened, for people."""

    last_succeeded_at: datetime | None = None
    """When a drill last succeeded (this one or an earlier one): alert on its age to catch drills
    that fail or stopped running."""


class OwnedObject(_Model):
    """One object Phalanx created for the store."""

    name: Text
    """Its name."""

    uid: Text
    """Its uid, as the API server answered the create: what proves that Phalanx made it."""


_BY_NAME: Final = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
_BY_MEMBER: Final = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["member"]}


class OwnedStatus(_Model):
    """The record of provenance: the volumes and snapshots Phalanx created for this store and that
    still exist. Labels say what an object claims to be, not who made it; Phalanx deletes, adopts or
    restores from an object only when its uid is recorded here, and only Phalanx writes status."""

    claims: Annotated[list[OwnedObject], Field(json_schema_extra=_BY_NAME)] = Field(default_factory=list)
    """Member PersistentVolumeClaims, live and retired, and the throwaway claims of restore drills."""

    snapshots: Annotated[list[OwnedObject], Field(json_schema_extra=_BY_NAME)] = Field(default_factory=list)
    """VolumeSnapshots of the store's lineage."""


class GateReading(_Model):
    """The health gate's readings of one member on the update revision."""

    member: Text
    """The member."""

    readings: Count = 0
    """Readings in a row that found it serving with no container restart; one failure starts again."""

    restarts: Count = 0
    """Its containers' restarts at the last reading: a restart since fails the next reading."""

    last_reading: datetime | None = None
    """When it was last read."""

    passed: StrictBool = False
    """It passed the gate: Ready for minReadySeconds, then consecutiveChecks readings in a row."""


class RolloutStatus(_Model):
    """The rollout in flight, and the plan of what comes next: readable before it acts."""

    revision: Text | None = None
    """The template revision being rolled out."""

    strategy: UpdateStrategy | None = None
    """InPlace or Replace (members named in a replace request always take Replace)."""

    zone: Text | None = None
    """The zone of the step in flight (or of the next step)."""

    step: Text | None = None
    """The step in flight: which batch, canary or not."""

    step_started_at: datetime | None = None
    """When the step in flight started: it must pass the health gate within updates.progressDeadline."""

    in_flight: list[Text] = Field(default_factory=list)
    """Members of the step in flight, until they pass the gate."""

    updated: list[Text] = Field(default_factory=list)
    """Members on the update revision that passed the gate."""

    pending: list[Text] = Field(default_factory=list)
    """Members still to update, in the order they will go."""

    steps: list[Text] = Field(default_factory=list)
    """The remaining steps, in order: zone and members of each."""

    waiting_for: Text | None = None
    """What the rollout waits for before its next step."""

    paused: StrictBool = False
    """updates.paused, or the store's annotation phalanx.dev/rollout-paused, holds the next step."""

    halted: Text | None = None
    """Why the rollout stopped (a step that did not pass the gate within progressDeadline)."""

    gate: Annotated[list[GateReading], Field(json_schema_extra=_BY_MEMBER)] = Field(default_factory=list)
    """The health gate's readings of the members on the update revision."""

    replaced: Count = 0
    """Members already on the new revision."""

    total: Count = 0
    """Members to update in all."""


class ReplaceRequestStatus(_Model):
    """The last on-demand replacement asked with the store's annotation phalanx.dev/replace."""

    request: Text
    """The annotation's value that was answered (each value is answered once)."""

    members: list[Text] = Field(default_factory=list)
    """The members it named that are still to be replaced."""


class ReplicatedStoreStatus(_Model):
    """The observed state of the store, written by Phalanx only."""

    observed_generation: Count | None = None
    """The generation of the spec that this status describes."""

    conditions: Annotated[
        list[Condition],
        Field(
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        ),
    ] = Field(default_factory=list)
    """Ready, Reconciling and Stalled (kstatus, for `kubectl wait` and GitOps tools), and Degraded,
    ZonesBalanced and SnapshotsFresh."""

    phase: StorePhase | None = None
    """Pending, Ready, Degraded, Recovering, Updating, Paused, Invalid or Deleting."""

    replicas: Count = 0
    """Members that exist."""

    ready_replicas: Count = 0
    """Members that are ready."""

    updated_replicas: Count = 0
    """Members on the update revision."""

    ready_display: Text | None = None
    """Ready members over desired members (for example 5/6), for `kubectl get`."""

    zones_display: Text | None = None
    """Zones whose members are all ready, over the store's zones (for example 3/3), for `kubectl get`."""

    selector: Text | None = None
    """The label selector of the members' pods, as text (`phalanx.dev/store=<name>`): the scale
    subresource reads it, so that `kubectl scale`, HorizontalPodAutoscalers and VerticalPodAutoscalers
    find the pods they measure."""

    last_serial: Count = 0
    """The highest member serial used so far. Serials are never reused, so that a member's name always
    means one pod and one volume: a new member gets the next one."""

    current_revision: Text | None = None
    """The template revision that all members ran before the rollout in flight."""

    update_revision: Text | None = None
    """The template revision of the current spec."""

    zones: Annotated[
        list[ZoneStatus],
        Field(json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}),
    ] = Field(default_factory=list)
    """Members and ready members per zone."""

    members: Annotated[
        list[MemberStatus],
        Field(json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}),
    ] = Field(default_factory=list)
    """Every member."""

    snapshots: SnapshotStatus | None = None
    """The store's snapshots."""

    last_recovery: RecoveryRecord | None = None
    """The most recent replacement of a lost member."""

    last_drill: DrillRecord | None = None
    """The last restore drill that ended (spec.snapshots.drill)."""

    retired_volumes: RetiredVolumesStatus | None = None
    """Volumes of retired members still kept; absent when there are none."""

    reliability: ReliabilityStatus | None = None
    """Member losses, blast radius and recovery times over the last 24 hours, and the predicted time
    to rebuild a member."""

    rollout: RolloutStatus | None = None
    """The rollout in flight; absent when none is."""

    replace_request: ReplaceRequestStatus | None = None
    """The last on-demand replacement answered (annotation phalanx.dev/replace)."""

    owned: OwnedStatus | None = None
    """What Phalanx created for the store (by uid): the only objects it deletes, adopts or restores from."""

    kopf: dict[str, Any] | None = None
    """Bookkeeping of the Kopf framework that runs Phalanx; not for users."""
