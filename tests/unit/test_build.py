"""The children's manifests: what each member and the store as a whole look like to the API server.

Read as the specification of what Phalanx writes: member identity in labels, zone pinning that
survives the user's own affinity, the environment every container sees, which children the store
owns (and that data never is), and that everything built validates against Kubernetes 1.30.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phalanx import build, names
from phalanx.models import ReplicatedStoreSpec
from phalanx.names import StoreRef
from tests.strategies import ZONE_POOL, specs

STORE = StoreRef(name="orders", namespace="data", uid="0b5e3c1e-5f9a-4a57-9d2e-3f0c2a6d7e11")
MEMBER = "orders-4"
ZONE = "zone-b"
PEERS = ["orders-3", "orders-4", "orders-5"]

STORE_CONTAINER: dict[str, Any] = {
    "name": "store",
    "image": "valkey/valkey:8.0",
    "ports": [{"name": "client", "containerPort": 6379}, {"containerPort": 16379}],
    "env": [{"name": "ROLE", "value": "replica"}],
    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
}


def make_spec(pod: dict[str, Any] | None = None, **fields: Any) -> ReplicatedStoreSpec:
    """A valid spec; `pod` replaces the template's PodSpec, `fields` are wire fields of the spec."""
    body: dict[str, Any] = {
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "valkey"}, "annotations": {"team": "storage"}},
            "spec": pod if pod is not None else {"containers": [STORE_CONTAINER]},
        },
        "storage": {"size": "10Gi", "storageClassName": "fast"},
        **fields,
    }
    return ReplicatedStoreSpec.model_validate(copy.deepcopy(body))  # the model keeps the dicts it is given


def pod_of(spec: ReplicatedStoreSpec, seeded_from: str | None = None) -> dict[str, Any]:
    return build.member_pod(STORE, spec, MEMBER, ZONE, PEERS, seeded_from, "rev0000001")


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {variable["name"]: variable["value"] for variable in container["env"]}


ZONE_TERM = {"key": names.NODE_ZONE_LABEL, "operator": "In", "values": [ZONE]}

# ------------------------------------------------------------------------------- every child at once


def all_children(spec: ReplicatedStoreSpec) -> dict[str, dict[str, Any]]:
    """One of each manifest Phalanx builds, by a short name."""
    client = build.client_service(STORE, spec)
    assert client is not None
    return {
        "claim": build.member_claim(STORE, spec, MEMBER, ZONE, "orders-snap-1"),
        "pod": pod_of(spec),
        "peers": build.peers_service(STORE, spec),
        "client": client,
        "pdb": build.disruption_budget(STORE, spec, "policy/v1"),
        "snapshot": build.volume_snapshot(STORE, spec, MEMBER, ZONE, "orders-snap-2"),
    }


OWNED = {"pod", "peers", "client", "pdb"}
DATA = {"claim", "snapshot"}


@pytest.mark.parametrize("child", sorted(OWNED | DATA))
def test_every_child_carries_the_store_and_recommended_labels_in_its_namespace(child: str) -> None:
    metadata = all_children(make_spec())[child]["metadata"]
    assert metadata["namespace"] == STORE.namespace
    assert metadata["labels"][names.STORE_LABEL] == STORE.name
    assert metadata["labels"][build.MANAGED_BY_LABEL] == "phalanx"
    assert build.NAME_LABEL in metadata["labels"]


@pytest.mark.parametrize("child", sorted(OWNED))
def test_the_store_owns_its_pods_services_and_budget(child: str) -> None:
    metadata = all_children(make_spec())[child]["metadata"]
    assert metadata["ownerReferences"] == [build.owner_reference(STORE)]


@pytest.mark.parametrize("child", sorted(DATA))
def test_data_is_never_owned_so_garbage_collection_cannot_cascade_into_it(child: str) -> None:
    assert "ownerReferences" not in all_children(make_spec())[child]["metadata"]


def test_the_owner_reference_names_the_store_as_controller() -> None:
    assert build.owner_reference(STORE) == {
        "apiVersion": "phalanx.dev/v1alpha1",
        "kind": "ReplicatedStore",
        "name": "orders",
        "uid": STORE.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


@pytest.mark.parametrize("child", ["claim", "snapshot"])
def test_member_data_is_labelled_with_its_member_and_zone(child: str) -> None:
    labels = all_children(make_spec())[child]["metadata"]["labels"]
    assert labels[names.MEMBER_LABEL] == MEMBER
    assert labels[names.ZONE_LABEL] == ZONE
    assert labels[build.NAME_LABEL] == STORE.name


# -------------------------------------------------------------------------------------------- PVC


@pytest.mark.parametrize(
    ("snapshot", "data_source", "annotation"),
    [
        (None, None, ""),
        (
            "orders-snap-7",
            {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "orders-snap-7"},
            "orders-snap-7",
        ),
    ],
    ids=["empty", "seeded"],
)
def test_a_claim_is_restored_from_a_snapshot_only_when_seeded(
    snapshot: str | None, data_source: dict[str, str] | None, annotation: str
) -> None:
    claim = build.member_claim(STORE, make_spec(), MEMBER, ZONE, snapshot)
    assert claim["metadata"]["name"] == MEMBER
    assert claim["spec"].get("dataSource") == data_source
    assert claim["metadata"]["annotations"] == {names.SEEDED_FROM_ANNOTATION: annotation}


@pytest.mark.parametrize(
    ("storage", "requests", "storage_class"),
    [
        ({"size": "10Gi", "storageClassName": "fast"}, "10Gi", "fast"),
        ({"size": "1.5Gi"}, "1.5Gi", None),
        ({"size": 1073741824}, "1073741824", None),
    ],
)
def test_a_claim_asks_for_the_size_as_written_and_the_class_only_when_set(
    storage: dict[str, Any], requests: str, storage_class: str | None
) -> None:
    claim = build.member_claim(STORE, make_spec(storage=storage), MEMBER, ZONE, None)
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"] == {"requests": {"storage": requests}}
    assert claim["spec"].get("storageClassName") == storage_class


# -------------------------------------------------------------------------------------------- Pod


def test_a_pod_is_the_member_with_its_identity_revision_and_the_template_metadata() -> None:
    pod = pod_of(make_spec())
    assert pod["metadata"]["name"] == MEMBER
    assert pod["metadata"]["labels"] == {
        "app.kubernetes.io/name": "valkey",  # the template names its application
        build.MANAGED_BY_LABEL: "phalanx",
        names.STORE_LABEL: STORE.name,
        names.MEMBER_LABEL: MEMBER,
        names.ZONE_LABEL: ZONE,
        names.REVISION_LABEL: "rev0000001",
    }
    assert pod["metadata"]["annotations"] == {"team": "storage"}


def test_a_pod_is_named_for_peer_dns_under_the_headless_service() -> None:
    pod_spec = pod_of(make_spec())["spec"]
    assert pod_spec["hostname"] == MEMBER
    assert pod_spec["subdomain"] == build.peers_service(STORE, make_spec())["metadata"]["name"] == "orders-peers"


def test_a_pod_mounts_its_own_claim_as_the_data_volume_next_to_the_template_volumes() -> None:
    pod = {"containers": [STORE_CONTAINER], "volumes": [{"name": "config", "configMap": {"name": "orders"}}]}
    volumes = pod_of(make_spec(pod))["spec"]["volumes"]
    assert volumes == [
        {"name": "config", "configMap": {"name": "orders"}},
        {"name": names.DATA_VOLUME, "persistentVolumeClaim": {"claimName": MEMBER}},
    ]


def test_a_template_data_volume_is_replaced_never_duplicated() -> None:
    # Validation refuses such a template; the builder still never emits two volumes of one name.
    pod = {"containers": [STORE_CONTAINER], "volumes": [{"name": names.DATA_VOLUME, "emptyDir": {}}]}
    volumes = pod_of(make_spec(pod))["spec"]["volumes"]
    assert volumes == [{"name": names.DATA_VOLUME, "persistentVolumeClaim": {"claimName": MEMBER}}]


@pytest.mark.parametrize("seeded_from", [None, "orders-snap-9"])
def test_every_container_and_init_container_gets_the_member_environment_first(seeded_from: str | None) -> None:
    init = {"name": "init", "image": "busybox", "env": [{"name": "NODE", "value": "$(PHALANX_MEMBER)"}]}
    sidecar = {"name": "exporter", "image": "exporter:1"}
    pod = pod_of(make_spec({"containers": [STORE_CONTAINER, sidecar], "initContainers": [init]}), seeded_from)
    expected = {
        "PHALANX_STORE": "orders",
        "PHALANX_MEMBER": MEMBER,
        "PHALANX_ZONE": ZONE,
        "PHALANX_PEERS": ",".join(f"{peer}.orders-peers.data.svc" for peer in PEERS),
        "PHALANX_SEEDED_FROM": seeded_from or "",
    }
    containers = [*pod["spec"]["containers"], *pod["spec"]["initContainers"]]
    assert [container["name"] for container in containers] == ["store", "exporter", "init"]
    for container in containers:
        names_in_order = [variable["name"] for variable in container["env"]]
        assert names_in_order[: len(expected)] == list(expected), "first, so $(PHALANX_*) expands in the rest"
        assert {key: env_of(container)[key] for key in expected} == expected
    assert env_of(containers[0])["ROLE"] == "replica"
    assert env_of(containers[2])["NODE"] == "$(PHALANX_MEMBER)"


def test_a_pod_without_peers_gets_an_empty_peer_list() -> None:
    pod = build.member_pod(STORE, make_spec(), MEMBER, ZONE, [], None, "r")
    assert env_of(pod["spec"]["containers"][0])["PHALANX_PEERS"] == ""


def test_a_pod_without_affinity_is_pinned_to_its_zone_by_one_required_term() -> None:
    affinity = pod_of(make_spec())["spec"]["affinity"]
    assert affinity == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [ZONE_TERM]}]}
        }
    }


def test_the_zone_is_added_to_every_required_term_of_the_template_affinity_and_the_rest_is_kept() -> None:
    disk = {"key": "disk", "operator": "In", "values": ["ssd"]}
    by_field = {"key": "metadata.name", "operator": "NotIn", "values": ["node-9"]}
    preferred = [{"weight": 10, "preference": {"matchExpressions": [{"key": "fast", "operator": "Exists"}]}}]
    anti = {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "kubernetes.io/hostname"}]}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [disk]}, {"matchFields": [by_field]}]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": preferred,
        },
        "podAntiAffinity": anti,
    }
    pinned = pod_of(make_spec({"containers": [STORE_CONTAINER], "affinity": affinity}))["spec"]["affinity"]
    assert pinned == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                # Terms are ORed: a term without the zone would let the member leave it.
                "nodeSelectorTerms": [
                    {"matchExpressions": [disk, ZONE_TERM]},
                    {"matchFields": [by_field], "matchExpressions": [ZONE_TERM]},
                ]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": preferred,
        },
        "podAntiAffinity": anti,
    }


def test_pod_affinity_without_node_affinity_gets_the_zone_term_alongside() -> None:
    anti = {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "kubernetes.io/hostname"}]}
    pod = {"containers": [STORE_CONTAINER], "affinity": {"podAntiAffinity": anti}}
    affinity = pod_of(make_spec(pod))["spec"]["affinity"]
    assert affinity["podAntiAffinity"] == anti
    assert affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchExpressions": [ZONE_TERM]}]
    }


def test_the_rest_of_the_template_reaches_the_pod_unchanged() -> None:
    tolerations = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    pod_spec = pod_of(make_spec({"containers": [STORE_CONTAINER], "tolerations": tolerations}))["spec"]
    assert pod_spec["tolerations"] == tolerations
    assert pod_spec["containers"][0]["ports"] == STORE_CONTAINER["ports"]


# ----------------------------------------------------------------------------------- never mutated


def test_building_never_mutates_the_spec_or_the_peers() -> None:
    term = {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}
    affinity: dict[str, Any] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term, {}]}}
    }
    init = {"name": "init", "image": "busybox", "env": [{"name": "A", "value": "1"}]}
    spec = make_spec(
        {"containers": [STORE_CONTAINER], "initContainers": [init], "affinity": affinity, "volumes": []},
        snapshots={"volumeSnapshotClassName": "snap"},
    )
    wire, peers = copy.deepcopy(spec.to_wire()), list(PEERS)
    all_children(spec)
    build.member_claim(STORE, spec, MEMBER, ZONE, None)
    assert spec.to_wire() == wire
    assert peers == PEERS


def test_built_pods_share_nothing_with_the_template_or_each_other() -> None:
    # `act` may adjust what it writes; that must not leak into the spec or into other members.
    tolerations = [{"key": "dedicated", "operator": "Exists"}]
    sidecar = {"name": "exporter", "image": "exporter:1"}
    spec = make_spec({"containers": [STORE_CONTAINER, sidecar], "tolerations": tolerations})
    template = copy.deepcopy(spec.template.to_wire())
    first, second = pod_of(spec), pod_of(spec)
    second_as_built = copy.deepcopy(second)
    first["spec"]["containers"][0]["env"].append({"name": "X", "value": "1"})
    first["spec"]["containers"][0]["env"][0]["value"] = "changed"
    first["spec"]["containers"][0]["ports"].clear()
    first["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = "/elsewhere"
    first["spec"]["tolerations"].clear()
    first["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"].clear()
    first["metadata"]["annotations"]["team"] = "other"
    assert env_of(first["spec"]["containers"][1])[names.ENV_STORE] == STORE.name
    assert second == second_as_built
    assert spec.template.to_wire() == template


# --------------------------------------------------------------------------------------- Services


def ports(*containers: list[dict[str, Any]]) -> ReplicatedStoreSpec:
    """A spec whose containers declare these ports."""
    return make_spec({"containers": [{"name": f"c{i}", "image": "x", "ports": p} for i, p in enumerate(containers)]})


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        pytest.param(
            [[{"name": "client", "containerPort": 6379}]],
            [("client", 6379, "TCP")],
            id="named",
        ),
        pytest.param(
            [[{"containerPort": 6379}, {"containerPort": 16379}]],
            [("port-6379", 6379, "TCP"), ("port-16379", 16379, "TCP")],
            id="unnamed-get-port-number",
        ),
        pytest.param(
            [[{"name": "dns", "containerPort": 53, "protocol": "UDP"}, {"containerPort": 53}]],
            [("dns", 53, "UDP"), ("port-53", 53, "TCP")],
            id="one-number-two-protocols",
        ),
        pytest.param(
            [[{"name": "client", "containerPort": 6379}], [{"name": "client", "containerPort": 6379}]],
            [("client", 6379, "TCP")],
            id="same-port-in-two-containers-once",
        ),
        pytest.param(
            [[{"name": "client", "containerPort": 6379}], [{"name": "client", "containerPort": 9121}]],
            [("client", 6379, "TCP"), ("port-9121", 9121, "TCP")],
            id="same-name-two-numbers",
        ),
        pytest.param(
            [
                [
                    {"name": "port-53", "containerPort": 1},
                    {"containerPort": 53},
                    {"containerPort": 53, "protocol": "UDP"},
                ]
            ],
            [("port-53", 1, "TCP"), ("port-53-tcp", 53, "TCP"), ("port-53-udp", 53, "UDP")],
            id="fallback-names-stay-unique",
        ),
        pytest.param(
            [
                [
                    {"name": "port-53", "containerPort": 1},
                    {"name": "port-53-tcp", "containerPort": 2},
                    {"containerPort": 53},
                ]
            ],
            [("port-53", 1, "TCP"), ("port-53-tcp", 2, "TCP"), ("port-53-2", 53, "TCP")],
            id="counter-when-every-fallback-is-taken",
        ),
    ],
)
def test_service_ports_are_the_container_ports_once_each_with_a_unique_name(
    declared: list[list[dict[str, Any]]], expected: list[tuple[str, int, str]]
) -> None:
    spec = ports(*declared)
    for service in (build.peers_service(STORE, spec), build.client_service(STORE, spec)):
        assert service is not None
        built = service["spec"]["ports"]
        assert [(port["name"], port["port"], port["protocol"]) for port in built] == expected
        assert all(port["targetPort"] == port["port"] for port in built)
        assert all(len(port["name"]) <= 15 for port in built)


def test_the_peers_service_is_headless_and_publishes_members_before_they_are_ready() -> None:
    service = build.peers_service(STORE, make_spec())
    assert service["metadata"]["name"] == "orders-peers"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {names.STORE_LABEL: STORE.name}


def test_the_client_service_selects_the_store_and_leaves_readiness_to_kubernetes() -> None:
    service = build.client_service(STORE, make_spec())
    assert service is not None
    assert service["metadata"]["name"] == "orders"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {names.STORE_LABEL: STORE.name}
    assert "publishNotReadyAddresses" not in service["spec"]


def test_without_container_ports_there_is_no_client_service_and_a_portless_peers_service() -> None:
    spec = ports([])
    assert build.client_service(STORE, spec) is None
    peers = build.peers_service(STORE, spec)
    assert "ports" not in peers["spec"]
    assert peers["spec"]["clusterIP"] == "None"


# -------------------------------------------------------------------------------------------- PDB


@pytest.mark.parametrize("api_version", ["policy/v1", "policy/v1beta1"])
@pytest.mark.parametrize("max_unavailable", [0, 1, 2])
def test_the_budget_is_built_for_the_api_version_the_cluster_serves(api_version: str, max_unavailable: int) -> None:
    spec = make_spec(replicas=5, disruptionBudget={"maxUnavailable": max_unavailable})
    budget = build.disruption_budget(STORE, spec, api_version)
    assert budget["apiVersion"] == api_version
    assert budget["kind"] == "PodDisruptionBudget"
    assert budget["metadata"]["name"] == "orders"
    assert budget["spec"] == {
        "selector": {"matchLabels": {names.STORE_LABEL: STORE.name}},
        "maxUnavailable": max_unavailable,
    }


def test_an_unknown_budget_api_version_is_refused() -> None:
    with pytest.raises(ValueError, match="policy/v2"):
        build.disruption_budget(STORE, make_spec(), "policy/v2")


# -------------------------------------------------------------------------------------- Snapshots


@pytest.mark.parametrize(
    ("snapshots", "expected"),
    [
        (None, {"source": {"persistentVolumeClaimName": MEMBER}}),
        ({}, {"source": {"persistentVolumeClaimName": MEMBER}}),
        (
            {"volumeSnapshotClassName": "csi-snap"},
            {"source": {"persistentVolumeClaimName": MEMBER}, "volumeSnapshotClassName": "csi-snap"},
        ),
    ],
    ids=["no-policy", "default-class", "named-class"],
)
def test_a_snapshot_is_of_the_member_claim_with_the_class_only_when_named(
    snapshots: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    fields = {} if snapshots is None else {"snapshots": snapshots}
    snapshot = build.volume_snapshot(STORE, make_spec(**fields), MEMBER, ZONE, "orders-snap-3")
    assert snapshot["apiVersion"] == "snapshot.storage.k8s.io/v1"
    assert snapshot["kind"] == "VolumeSnapshot"
    assert snapshot["metadata"]["name"] == "orders-snap-3"
    assert snapshot["spec"] == expected


def test_builders_own_every_label_of_a_snapshot_and_a_replacement_claim() -> None:
    """act adds nothing after build: the lineage's uid, an on-demand request, the final mark, and
    which lost member a replacement stands in for are all the builders'."""
    taken = build.volume_snapshot(STORE, make_spec(), MEMBER, ZONE, "orders-snap-4", request="now")
    assert taken["metadata"]["labels"][names.STORE_UID_LABEL] == STORE.uid
    assert taken["metadata"]["annotations"] == {names.SNAPSHOT_REQUEST: "now"}
    assert names.FINAL_LABEL not in taken["metadata"]["labels"]
    final = build.volume_snapshot(STORE, None, MEMBER, ZONE, "orders-1-final", final=True)
    assert final["metadata"]["labels"][names.FINAL_LABEL] == "true"
    claim = build.member_claim(STORE, make_spec(), MEMBER, ZONE, None, replaces="orders-2")
    assert claim["metadata"]["annotations"][names.REPLACES_ANNOTATION] == "orders-2"


# --------------------------------------------------------------------------------------- Revision


def test_a_revision_is_a_short_hex_label_value() -> None:
    assert re.fullmatch(r"[0-9a-f]{10}", build.template_revision(make_spec()))


def test_the_revision_ignores_key_order() -> None:
    container = {"name": "store", "image": "valkey/valkey:8.0", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}
    reordered = {key: container[key] for key in reversed(list(container))}
    first = make_spec({"containers": [container], "tolerations": []})
    second = make_spec({"tolerations": [], "containers": [reordered]})
    assert build.template_revision(first) == build.template_revision(second)


@pytest.mark.parametrize(
    "change",
    [
        lambda body: body["template"]["spec"]["containers"][0].update(image="valkey/valkey:8.1"),
        lambda body: body["template"]["spec"]["containers"][0]["env"].append({"name": "NEW", "value": "1"}),
        lambda body: body["template"]["metadata"]["labels"].update(tier="cache"),
        lambda body: body["template"]["metadata"]["annotations"].update(team="other"),
    ],
    ids=["image", "env", "label", "annotation"],
)
def test_the_revision_changes_with_the_template(change: Callable[[dict[str, Any]], None]) -> None:
    body = copy.deepcopy(make_spec().to_wire())
    change(body)
    assert build.template_revision(ReplicatedStoreSpec.model_validate(body)) != build.template_revision(make_spec())


@pytest.mark.parametrize(
    "fields",
    [{"replicas": 5}, {"storage": {"size": "20Gi"}}, {"snapshots": {}}, {"updates": {"paused": True}}],
    ids=["replicas", "storage", "snapshots", "updates"],
)
def test_the_revision_ignores_everything_but_the_template(fields: dict[str, Any]) -> None:
    assert build.template_revision(make_spec(**fields)) == build.template_revision(make_spec())


# ---------------------------------------------------------------------- valid for Kubernetes 1.30


def validate(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, "1.30", strict=True)


@settings(max_examples=30, deadline=None)
@given(
    spec=specs(),
    zone=st.sampled_from(ZONE_POOL),
    serial=st.integers(0, 999),
    seeded=st.booleans(),
    peers=st.lists(st.integers(0, 999), max_size=5, unique=True),
)
def test_every_built_manifest_validates_against_kubernetes_1_30(
    spec: ReplicatedStoreSpec, zone: str, serial: int, seeded: bool, peers: list[int]
) -> None:
    # VolumeSnapshot is a custom resource (no schema to check against); policy/v1beta1 is not
    # served by 1.30, and its body is the v1 one.
    member = names.member_name(STORE.name, serial)
    snapshot = "orders-snap-1" if seeded else None
    peer_names = [names.member_name(STORE.name, peer) for peer in peers]
    revision = build.template_revision(spec)
    validate(build.member_claim(STORE, spec, member, zone, snapshot))
    validate(build.member_pod(STORE, spec, member, zone, peer_names, snapshot, revision))
    validate(build.peers_service(STORE, spec))
    validate(build.disruption_budget(STORE, spec, "policy/v1"))
    client = build.client_service(STORE, spec)
    if client is not None:
        validate(client)


def test_a_child_digest_ignores_what_the_api_server_adds_and_sees_what_phalanx_decides() -> None:
    spec = make_spec()
    built = build.peers_service(STORE, spec)
    served = {**built, "metadata": {**built["metadata"], "uid": "u", "resourceVersion": "7"}}
    served["spec"] = {**built["spec"], "sessionAffinity": "None", "type": "ClusterIP"}
    assert build.child_fingerprint(served) == build.child_fingerprint(built)
    budget = build.disruption_budget(STORE, spec, "policy/v1beta1")
    tighter = {**budget, "spec": {**budget["spec"], "maxUnavailable": 0}}
    assert build.child_fingerprint(tighter) != build.child_fingerprint(budget)


# ---------------------------------------------------------------------------------- restore drills

DRILL = "orders-drill-20250101-120000"
CHECK: dict[str, Any] = {
    "name": "check",
    "image": "valkey/valkey:8.0",
    "command": ["valkey-check-rdb", "/restored/dump.rdb"],
    "volumeMounts": [{"name": "data", "mountPath": "/restored"}],
}


def drill_spec(verify: dict[str, Any] | None = None) -> ReplicatedStoreSpec:
    drill: dict[str, Any] = {"interval": "24h"}
    if verify is not None:
        drill["verify"] = verify
    return make_spec(snapshots={"interval": "1h", "drill": drill})


def test_a_drill_claim_is_a_restore_owned_by_the_store_and_never_a_member() -> None:
    claim = build.drill_claim(STORE, drill_spec(), DRILL, ZONE, "orders-snap-7", node="node-b-0")
    labels, annotations = claim["metadata"]["labels"], claim["metadata"]["annotations"]
    assert labels[names.STORE_LABEL] == "orders" and labels[names.DRILL_LABEL] == "true"
    assert labels[names.ZONE_LABEL] == ZONE and names.MEMBER_LABEL not in labels
    assert claim["spec"]["dataSource"] == {
        "apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot",
        "name": "orders-snap-7",
    }
    assert (
        claim["spec"]["resources"] == build.member_claim(STORE, drill_spec(), MEMBER, ZONE, None)["spec"]["resources"]
    )
    # A throwaway copy: the store's deletion takes it along (a member's claim is never owned).
    assert claim["metadata"]["ownerReferences"] == [build.owner_reference(STORE)]
    assert annotations == {names.SEEDED_FROM_ANNOTATION: "orders-snap-7", build.SELECTED_NODE_ANNOTATION: "node-b-0"}
    without_node = build.drill_claim(STORE, drill_spec(), DRILL, ZONE, "orders-snap-7")
    assert build.SELECTED_NODE_ANNOTATION not in without_node["metadata"]["annotations"]


def test_a_drill_pod_checks_the_copy_read_only_once_in_its_zone_outside_the_stores_selectors() -> None:
    extra = {**CHECK, "name": "report", "volumeMounts": []}
    init = {"name": "wait", "image": "busybox:1", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}
    verify = {
        "metadata": {"labels": {"team": "storage"}, "annotations": {"sim.phalanx.dev/exit-code": "0"}},
        "spec": {"containers": [CHECK, extra], "initContainers": [init]},
    }
    pod = build.drill_pod(STORE, drill_spec(verify), DRILL, ZONE, "orders-snap-7")
    labels = pod["metadata"]["labels"]
    assert names.STORE_LABEL not in labels, "the store's Services and budget select by it"
    assert labels[names.DRILL_OF_LABEL] == "orders" and labels[names.DRILL_LABEL] == "true"
    assert labels["team"] == "storage" and pod["metadata"]["annotations"] == {"sim.phalanx.dev/exit-code": "0"}
    assert pod["metadata"]["ownerReferences"] == [build.owner_reference(STORE)]
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": DRILL, "readOnly": True}} in spec["volumes"]
    check, report = spec["containers"]
    assert check["volumeMounts"] == [{"name": "data", "mountPath": "/restored", "readOnly": True}]
    assert report["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert spec["initContainers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/d", "readOnly": True}]
    assert env_of(check) == {"PHALANX_STORE": "orders", "PHALANX_ZONE": ZONE, "PHALANX_SNAPSHOT": "orders-snap-7"}
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert all(
        {"key": names.NODE_ZONE_LABEL, "operator": "In", "values": [ZONE]} in t["matchExpressions"] for t in terms
    )
    assert CHECK["volumeMounts"] == [{"name": "data", "mountPath": "/restored"}], "the spec is never changed"
    with pytest.raises(ValueError, match="verify"):
        build.drill_pod(STORE, drill_spec(), DRILL, ZONE, "orders-snap-7")


@settings(max_examples=20, deadline=None)
@given(zone=st.sampled_from(ZONE_POOL), verify=st.booleans())
def test_drill_manifests_validate_against_kubernetes_1_30(zone: str, verify: bool) -> None:
    spec = drill_spec({"spec": {"containers": [CHECK]}} if verify else None)
    validate(build.drill_claim(STORE, spec, DRILL, zone, "orders-snap-7", None if verify else "node-0"))
    if verify:
        validate(build.drill_pod(STORE, spec, DRILL, zone, "orders-snap-7"))
