"""Semantic validation of a ReplicatedStore: what the OpenAPI schema cannot say.

Where it sits: the first step of every reconcile. A stored object is parsed with `phalanx.models`
(types, enums, bounds: the same rules as the CRD schema) and then checked here for rules that relate
fields to each other or look inside the free-form pod template. An invalid store gets a status that
says what is wrong, and nothing else (invariant I6) — the operator never depends on the API server
having enforced the CRD's CEL rules, since older servers ignore them.

Every error names the field (`spec.updates.canary`) and says how to fix it. Pure: no kopf, no
kubernetes client, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from phalanx.models import (
    DATA_VOLUME,
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    RESERVED_ENV_PREFIX,
    RESERVED_LABEL_PREFIX,
    ZONE_LABEL,
    DeletionPolicy,
    DrillPodTemplate,
    PodTemplate,
    ReplicatedStoreSpec,
    ZoneFailurePolicy,
)

__all__ = ["SpecError", "parse_spec", "validate_spec"]


@dataclass(frozen=True, order=True)
class SpecError:
    """One reason why a store is invalid: the field at fault and what to do about it."""

    field: str
    """Path of the field, as users write it: `spec.updates.canary`, `spec.template.spec.containers[0]`."""
    message: str
    """What is wrong and how to fix it, for people."""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def parse_spec(body: Mapping[str, Any], name: str | None = None) -> ReplicatedStoreSpec | list[SpecError]:
    """Parse a raw `spec` and validate it: the model when the store is valid, else every error found.

    `name` is the store's `metadata.name`, checked too when given. Errors of the model (a wrong type,
    a value out of bounds) come in the same shape as the semantic ones.
    """
    try:
        spec = ReplicatedStoreSpec.model_validate(body)
    except ValidationError as error:
        return [_from_pydantic(detail) for detail in error.errors(include_url=False)]
    return validate_spec(spec, name) or spec


def validate_spec(spec: ReplicatedStoreSpec, name: str | None = None) -> list[SpecError]:
    """Every semantic error of a parsed spec (and of the store's name, when given), sorted by field."""
    errors = [error for check in _SPEC_CHECKS for error in check(spec)]
    if name is not None:
        errors.extend(_check_name(name))
    errors.extend(_check_template(spec.template))
    drill = spec.snapshots.drill if spec.snapshots is not None else None
    if drill is not None and drill.verify is not None:
        errors.extend(_check_verify(drill.verify))
    return sorted(errors)


# --------------------------------------------------------------------------------------------------
# Checks across fields. The first five mirror the CEL rules that models.py declares for the CRD.


def _check_name(name: str) -> Iterator[SpecError]:
    if len(name) > MAX_NAME_LENGTH:
        yield SpecError(
            "metadata.name",
            f"{name!r} has {len(name)} characters: use at most {MAX_NAME_LENGTH}, "
            "because member and Service names are built from it",
        )
    if not re.fullmatch(NAME_PATTERN, name):
        yield SpecError(
            "metadata.name",
            f"{name!r} is not a DNS label: start with a letter, use only lowercase letters, digits and '-', "
            "and end with a letter or digit",
        )


def _check_canary(spec: ReplicatedStoreSpec) -> Iterator[SpecError]:
    if spec.updates.canary > spec.replicas:
        yield SpecError(
            "spec.updates.canary",
            f"a canary of {spec.updates.canary} is larger than the store ({spec.replicas} replicas): "
            f"set it to at most {spec.replicas}, or 0 for no canary",
        )


def _check_disruption_budget(spec: ReplicatedStoreSpec) -> Iterator[SpecError]:
    allowed = max(1, (spec.replicas - 1) // 2)
    if spec.disruption_budget.max_unavailable > allowed:
        yield SpecError(
            "spec.disruptionBudget.maxUnavailable",
            f"{spec.disruption_budget.max_unavailable} of {spec.replicas} members may not be evicted at once "
            f"without breaking the majority: set it to at most {allowed}",
        )


def _check_redistribute(spec: ReplicatedStoreSpec) -> Iterator[SpecError]:
    if spec.recovery.zone_failure == ZoneFailurePolicy.REDISTRIBUTE and spec.zones is not None and len(spec.zones) < 2:
        yield SpecError(
            "spec.recovery.zoneFailure",
            "Redistribute rebuilds a lost zone's members in the surviving zones, but spec.zones lists only one: "
            "list more zones, or use Wait",
        )


def _check_final_snapshot(spec: ReplicatedStoreSpec) -> Iterator[SpecError]:
    if spec.deletion_policy == DeletionPolicy.SNAPSHOT and spec.snapshots is None:
        yield SpecError(
            "spec.deletionPolicy",
            "Snapshot takes a final snapshot, but spec.snapshots is not set: add spec.snapshots "
            "(for example {volumeSnapshotClassName: <class>}), or choose Retain or Delete",
        )


def _check_snapshot_ages(spec: ReplicatedStoreSpec) -> Iterator[SpecError]:
    snapshots = spec.snapshots
    if snapshots is not None and snapshots.max_age is not None and snapshots.max_age < snapshots.interval:
        yield SpecError(
            "spec.snapshots.maxAge",
            f"maxAge {snapshots.max_age} is shorter than the interval {snapshots.interval}, so for a while there "
            f"would be no snapshot to seed from: set maxAge to at least {snapshots.interval}",
        )


def _check_drill_interval(spec: ReplicatedStoreSpec) -> Iterator[SpecError]:
    snapshots = spec.snapshots
    drill = snapshots.drill if snapshots is not None else None
    if snapshots is not None and drill is not None and drill.interval < snapshots.interval:
        yield SpecError(
            "spec.snapshots.drill.interval",
            f"a drill every {drill.interval} is more often than a snapshot is taken ({snapshots.interval}): it "
            f"would restore the same snapshot again; set it to at least {snapshots.interval}",
        )


def _check_grace_periods(spec: ReplicatedStoreSpec) -> Iterator[SpecError]:
    recovery = spec.recovery
    if recovery.zone_failure_grace < recovery.member_failure_grace:
        yield SpecError(
            "spec.recovery.zoneFailureGrace",
            f"{recovery.zone_failure_grace} is shorter than memberFailureGrace {recovery.member_failure_grace}: "
            f"a zone is judged lost only after its members, so set it to at least {recovery.member_failure_grace}",
        )


def _check_progress_deadline(spec: ReplicatedStoreSpec) -> Iterator[SpecError]:
    updates = spec.updates
    if updates.progress_deadline.total_seconds() <= updates.health_gate.min_ready_seconds:
        yield SpecError(
            "spec.updates.progressDeadline",
            f"{updates.progress_deadline} leaves no time for healthGate.minReadySeconds "
            f"({updates.health_gate.min_ready_seconds}s): make it longer, or lower minReadySeconds",
        )


_SPEC_CHECKS: Final[tuple[Callable[[ReplicatedStoreSpec], Iterator[SpecError]], ...]] = (
    _check_canary,
    _check_disruption_budget,
    _check_redistribute,
    _check_final_snapshot,
    _check_snapshot_ages,
    _check_drill_interval,
    _check_grace_periods,
    _check_progress_deadline,
)


# --------------------------------------------------------------------------------------------------
# The pod template: free-form for the schema (Kubernetes owns PodSpec, and the API server checks the Pods
# that Phalanx creates from it). Checked here: what Phalanx relies on or adds, so that a template that
# could never make a working member is refused before any member is made.

_QUALIFIED_NAME: Final = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_OWNED_POD_FIELDS: Final = {
    "nodeName": "Phalanx places each member in its zone (use nodeSelector, affinity or tolerations instead)",
    "hostname": "Phalanx sets each member's hostname to its name, for peer DNS",
    "subdomain": "Phalanx sets the subdomain to the store's headless Service, for peer DNS",
}
_TEMPLATE: Final = "spec.template"
_POD: Final = "spec.template.spec"


def _check_template(template: PodTemplate) -> Iterator[SpecError]:
    pod = template.spec
    yield from _check_metadata_keys("labels", template.metadata.labels)
    yield from _check_metadata_keys("annotations", template.metadata.annotations)
    yield from _check_pod_fields(pod)
    yield from _check_shapes(pod, ("containers", "initContainers", "volumes"))
    containers = list(_objects(pod, "containers"))
    if not containers:
        yield SpecError(
            f"{_POD}.containers",
            "a member needs at least one container: add containers: [{name: ..., image: ...}]",
        )
    all_containers = [*containers, *_objects(pod, "initContainers")]
    yield from _check_containers(all_containers)
    yield from _check_volumes(pod, all_containers)
    if containers and DATA_VOLUME not in _mounts(containers).values():
        yield SpecError(
            f"{_POD}.containers",
            "no container mounts the member's persistent volume: add volumeMounts: "
            f"[{{name: {DATA_VOLUME}, mountPath: <data directory>}}] to the store's container",
        )


_VERIFY: Final = "spec.snapshots.drill.verify"
_VERIFY_POD: Final = "spec.snapshots.drill.verify.spec"


def _check_verify(template: DrillPodTemplate) -> Iterator[SpecError]:
    """A restore drill's verification pod: what Phalanx adds to it (the restored volume, its
    variables, its zone, restartPolicy Never) must be left to Phalanx, as in the members' template."""
    pod = template.spec
    yield from _check_metadata_keys("labels", template.metadata.labels, base=_VERIFY)
    yield from _check_metadata_keys("annotations", template.metadata.annotations, base=_VERIFY)
    if "nodeName" in pod:
        yield SpecError(f"{_VERIFY_POD}.nodeName", "remove nodeName: Phalanx places the pod in the drill's zone")
    if pod.get("restartPolicy", "Never") != "Never":
        yield SpecError(
            f"{_VERIFY_POD}.restartPolicy",
            "the verdict is the containers' first exit: remove restartPolicy or set it to Never",
        )
    node_selector = pod.get("nodeSelector")
    if isinstance(node_selector, Mapping) and ZONE_LABEL in node_selector:
        yield SpecError(
            f"{_VERIFY_POD}.nodeSelector[{ZONE_LABEL}]",
            "Phalanx pins the pod to the drill's zone (drills rotate over the store's zones): remove it",
        )
    yield from _check_shapes(pod, ("containers", "initContainers", "volumes"), base=_VERIFY_POD)
    containers = list(_objects(pod, "containers", prefix=_VERIFY_POD))
    if not containers:
        yield SpecError(
            f"{_VERIFY_POD}.containers",
            "the verification pod needs a container that checks the data: add containers: [{name: ..., image: ...}]",
        )
    all_containers = [*containers, *_objects(pod, "initContainers", prefix=_VERIFY_POD)]
    yield from _check_containers(all_containers)
    yield from _check_volumes(pod, all_containers, base=_VERIFY_POD)


def _check_metadata_keys(kind: str, entries: Mapping[str, str], base: str = _TEMPLATE) -> Iterator[SpecError]:
    for key in entries:
        path = f"{base}.metadata.{kind}[{key}]"
        if key.startswith(RESERVED_LABEL_PREFIX):
            yield SpecError(
                path,
                f"{RESERVED_LABEL_PREFIX}* {kind} are Phalanx's own (they identify its members): "
                "remove this one or choose another prefix",
            )
        elif not _QUALIFIED_NAME.fullmatch(key) or len(key.rpartition("/")[2]) > 63:
            yield SpecError(path, f"{key!r} is not a valid key: use [prefix/]name, the name at most 63 characters")


def _check_pod_fields(pod: Mapping[str, Any]) -> Iterator[SpecError]:
    for field, why in _OWNED_POD_FIELDS.items():
        if field in pod:
            yield SpecError(f"{_POD}.{field}", f"remove {field}: {why}")
    if pod.get("restartPolicy", "Always") != "Always":
        yield SpecError(
            f"{_POD}.restartPolicy",
            "members run for good, so their containers restart: remove restartPolicy or set it to Always",
        )
    node_selector = pod.get("nodeSelector")
    if isinstance(node_selector, Mapping) and ZONE_LABEL in node_selector:
        yield SpecError(
            f"{_POD}.nodeSelector[{ZONE_LABEL}]",
            "Phalanx pins each member to its own zone: list the zones in spec.zones instead",
        )


def _check_shapes(pod: Mapping[str, Any], lists: tuple[str, ...], base: str = _POD) -> Iterator[SpecError]:
    for key in lists:
        value = pod.get(key)
        if value is not None and not isinstance(value, list):
            yield SpecError(f"{base}.{key}", f"must be a list, not {type(value).__name__}")
        for index, item in enumerate(value if isinstance(value, list) else []):
            if not isinstance(item, Mapping):
                yield SpecError(f"{base}.{key}[{index}]", "must be an object with at least a name")


def _check_containers(containers: list[tuple[str, Mapping[str, Any]]]) -> Iterator[SpecError]:
    seen: set[str] = set()
    for path, container in containers:
        name = container.get("name")
        if not isinstance(name, str) or not _DNS_LABEL.fullmatch(name) or len(name) > 63:
            yield SpecError(f"{path}.name", "every container needs a name: lowercase letters, digits and '-'")
        elif name in seen:
            yield SpecError(f"{path}.name", f"the container name {name!r} is used twice: give each a unique name")
        else:
            seen.add(name)
        image = container.get("image")
        if not isinstance(image, str) or not image.strip():
            yield SpecError(f"{path}.image", "every container needs an image: set image, for example valkey/valkey:8")
        for env_path, variable in _objects(container, "env", prefix=path):
            env_name = variable.get("name")
            if isinstance(env_name, str) and env_name.startswith(RESERVED_ENV_PREFIX):
                yield SpecError(
                    f"{env_path}.name",
                    f"{RESERVED_ENV_PREFIX}* variables are set by Phalanx (PHALANX_STORE, PHALANX_MEMBER, "
                    "PHALANX_ZONE, PHALANX_PEERS, PHALANX_SEEDED_FROM): remove this one or rename it",
                )


def _check_volumes(
    pod: Mapping[str, Any], containers: list[tuple[str, Mapping[str, Any]]], base: str = _POD
) -> Iterator[SpecError]:
    declared = set()
    for path, volume in _objects(pod, "volumes", prefix=base):
        declared.add(volume.get("name"))
        if volume.get("name") == DATA_VOLUME:
            yield SpecError(
                f"{path}.name",
                f"the volume {DATA_VOLUME!r} is the member's persistent volume, added by Phalanx: rename this volume",
            )
    for path, name in _mounts(containers).items():
        if name != DATA_VOLUME and name not in declared:
            yield SpecError(
                f"{path}.name",
                f"no volume named {name!r}: declare it in {base}.volumes, or mount {DATA_VOLUME!r} "
                "(the member's persistent volume)",
            )


def _mounts(containers: list[tuple[str, Mapping[str, Any]]]) -> dict[str, object]:
    """The volume name of every volumeMount of these containers, by the mount's path."""
    return {
        path: mount.get("name")
        for container_path, container in containers
        for path, mount in _objects(container, "volumeMounts", prefix=container_path)
    }


def _objects(parent: Mapping[str, Any], key: str, prefix: str = _POD) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The objects of a list field with their paths; what is not an object is reported by _check_shapes."""
    value = parent.get(key)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                yield f"{prefix}.{key}[{index}]", item


# --------------------------------------------------------------------------------------------------
# Errors of the model, in the same shape.

_PYDANTIC_MESSAGES: Final = {
    "missing": "is required: set it",
    "extra_forbidden": "is not a field of ReplicatedStore: remove it or correct its spelling "
    "(kubectl explain replicatedstore.spec lists the fields)",
}


def _from_pydantic(detail: Mapping[str, Any]) -> SpecError:
    message = _PYDANTIC_MESSAGES.get(detail["type"])
    if message is None:
        message = str(detail["msg"]).removeprefix("Value error, ").replace("Input should be", "should be", 1)
        # Messages of the models' own validators already quote the value.
        if detail["type"] != "value_error" and not isinstance(detail.get("input"), Mapping | list):
            message += f" (got {detail['input']!r})"
    return SpecError(_path(("spec", *detail["loc"])), message)


def _path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            path += f".{part}" if path else str(part)
        else:
            path += f"[{part}]"
    return path
