"""Safety against careless and hostile namespace users, on the real control plane.

Each test plays a user of one namespace holding the built-in ``edit`` ClusterRole (plus VolumeSnapshots
and ReplicatedStores, which ``edit`` does not cover), through the control plane's unprivileged token:
what such a user can create or edit must never cost data, freeze a store, subvert its members or leave
it silently diverging from its spec.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest

from phalanx import kube as k
from phalanx import names
from phalanx.kube import ApiError, Kube, Obj
from phalanx_sandbox import SimulatorHandle, wait_for
from tests.conftest import Cluster, Operator
from tests.integration.test_operator import (
    condition,
    member_claims,
    member_pods,
    passes,
    store,
    wait_ready,
)
from tests.integration.test_recovery import FAST, ready_snapshots, recovered
from tests.watching import Watcher, lowest_ready

pytestmark = pytest.mark.cluster

ROLES = k.Resource("rbac.authorization.k8s.io", "v1", "roles")
ROLE_BINDINGS = k.Resource("rbac.authorization.k8s.io", "v1", "rolebindings")
SERVICE_ACCOUNTS = k.Resource("", "v1", "serviceaccounts")
USER = "phalanx-nobody"
"""The user name of the control plane's unprivileged token (``Credentials.token_file``)."""
STUCK_UPDATES = {"progressDeadline": "10s", "healthGate": {"minReadySeconds": 0}}
"""A 10 s progress deadline; the health gate's default minReadySeconds (10) would make it invalid."""


# ------------------------------------------------------------------------------------------------
# The user, and what the tests read


def as_user(cluster: Cluster, kube: Kube, namespace: str) -> Kube:
    """A client for a real namespace user: ``edit`` in ``namespace``, plus VolumeSnapshots and stores."""
    plane = cluster.sandbox.plane
    assert plane is not None
    subject = {"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}

    def bind(name: str, kind: str, role: str) -> None:
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [subject],
        }
        kube.create(ROLE_BINDINGS, binding, namespace)

    bind("mallory-edit", "ClusterRole", "edit")
    verbs = ["get", "list", "watch", "create", "update", "patch", "delete"]
    kube.create(
        ROLES,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "mallory-extra"},
            "rules": [
                {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshots"], "verbs": verbs},
                {"apiGroups": ["phalanx.dev"], "resources": ["replicatedstores"], "verbs": verbs},
            ],
        },
        namespace,
    )
    bind("mallory-extra", "Role", "mallory-extra")
    user = Kube.from_kubeconfig(str(plane.kubeconfig_for(plane.credentials.unprivileged, "mallory")))

    def allowed() -> bool:
        try:
            for resource in (k.PODS, k.PVCS, k.SNAPSHOTS, k.STORES):
                user.items(resource, namespace)
        except ApiError as error:
            if error.status == 403:
                return False
            raise
        return True

    wait_for(allowed, f"{USER}'s rights in {namespace}")
    return user


@pytest.fixture
def user(cluster: Cluster, kube: Kube, namespace: str) -> Kube:
    return as_user(cluster, kube, namespace)


def status_of(kube: Kube, namespace: str, name: str) -> Obj:
    status: Obj = kube.get(k.STORES, name, namespace).get("status") or {}
    return status


def when_condition(
    kube: Kube, namespace: str, name: str, kind: str, test: Callable[[Obj], bool], what: str, timeout: float = 30
) -> Obj:
    """The store's condition ``kind`` once ``test`` holds for it."""

    def probe() -> Obj | None:
        found = condition(kube.get(k.STORES, name, namespace), kind)
        return found if found and test(found) else None

    return wait_for(probe, what, timeout=timeout)


def stalled(kube: Kube, namespace: str, name: str, timeout: float = 60) -> Obj:
    return when_condition(
        kube, namespace, name, "Stalled", lambda c: c["status"] == "True", f"{name} Stalled", timeout=timeout
    )


def live_claims(kube: Kube, namespace: str, name: str) -> dict[str, Obj]:
    """The store's claims not marked retired, by name."""
    return {
        c["metadata"]["name"]: c
        for c in member_claims(kube, namespace, name)
        if (c["metadata"].get("labels") or {}).get(names.RETIRED_LABEL) != "true"
    }


def owned_pods(kube: Kube, namespace: str, name: str) -> dict[str, Obj]:
    """Pods that the store made (it owns them), by name; a user's look-alike is not one of them."""
    uid = kube.get(k.STORES, name, namespace)["metadata"]["uid"]
    return {
        p["metadata"]["name"]: p
        for p in kube.items(k.PODS, namespace)
        if any(ref.get("uid") == uid for ref in p["metadata"].get("ownerReferences") or [])
    }


def data_claim(pod: Obj) -> str | None:
    for volume in pod["spec"].get("volumes") or []:
        if volume.get("name") == names.DATA_VOLUME:
            claim: str | None = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            return claim
    return None


def pod_ready(pod: Obj) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or []
    )


def user_pod(name: str, labels: dict[str, str], claim: str | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}
    if claim is not None:
        spec["containers"][0]["volumeMounts"] = [{"name": "vol", "mountPath": "/vol"}]
        spec["volumes"] = [{"name": "vol", "persistentVolumeClaim": {"claimName": claim}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}


def user_claim(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


# ------------------------------------------------------------------------------------------------
# 1. Deleting the namespace keeps the volumes of Retain stores


def test_deleting_the_namespace_keeps_the_volumes_of_retain_stores(
    cluster: Cluster, operator: Operator, kube: Kube
) -> None:
    namespace = f"s-{uuid.uuid4().hex[:8]}"  # our own: the test deletes it
    kube.create(k.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    keep_volumes: list[str] = []
    try:
        wait_for(lambda: (kube.find(SERVICE_ACCOUNTS, "default", namespace) or {}).get("secrets"), "SA token")
        user = as_user(cluster, kube, namespace)
        user.create(k.STORES, store("keep"), namespace)
        user.create(k.STORES, store("drop", deletionPolicy="Delete"), namespace)
        wait_ready(kube, namespace, "keep", 3)
        wait_ready(kube, namespace, "drop", 3)
        keep_claims = member_claims(kube, namespace, "keep")
        keep_volumes = [c["spec"]["volumeName"] for c in keep_claims]
        drop_volumes = [c["spec"]["volumeName"] for c in member_claims(kube, namespace, "drop")]
        assert len(keep_volumes) == 3 and len(drop_volumes) == 3
        old = kube.get(k.STORAGECLASSES, keep_claims[0]["spec"]["storageClassName"]).get("reclaimPolicy", "Delete")
        assert old != "Retain", "the test needs volumes that the provisioner deletes by default"

        def pinned() -> bool:
            for name in keep_volumes:
                pv = kube.get(k.PVS, name)
                was = (pv["metadata"].get("annotations") or {}).get(names.RECLAIM_WAS_ANNOTATION)
                if pv["spec"].get("persistentVolumeReclaimPolicy") != "Retain" or was != old:
                    return False
            return True

        # While the store lives: a namespace deletion does not wait for the operator's finalizer.
        wait_for(pinned, "keep's volumes pinned (reclaimPolicy Retain, the old policy noted)", timeout=30)
        kube.delete(k.NAMESPACES, namespace)
        wait_for(lambda: kube.find(k.NAMESPACES, namespace) is None, f"namespace {namespace} gone", timeout=120)
        gone = [name for name in keep_volumes if kube.find(k.PVS, name) is None]
        assert not gone, f"deleting the namespace destroyed Retain volumes {gone}"
        wait_for(
            lambda: all(kube.find(k.PVS, name) is None for name in drop_volumes),
            "the Delete store's volumes gone",
            timeout=30,
        )
    finally:
        kube.delete(k.NAMESPACES, namespace)
        for name in keep_volumes:  # the data we kept on purpose: tidy up after the test
            kube.delete(k.PVS, name)


# ------------------------------------------------------------------------------------------------
# 2. A claim that only claims to be a retired member is never deleted


def test_a_claim_labelled_as_a_retired_member_is_never_deleted(
    operator: Operator, kube: Kube, namespace: str, user: Kube
) -> None:
    user.create(k.STORES, store("hoard", deletionPolicy="Delete"), namespace)
    wait_ready(kube, namespace, "hoard", 3)
    labels = {
        names.STORE_LABEL: "hoard",
        names.MEMBER_LABEL: "hoard-97",
        names.ZONE_LABEL: "zone-a",
        names.RETIRED_LABEL: "true",
    }
    user.create(k.PVCS, user_claim("my-precious", labels), namespace)
    passes(operator, kube, namespace, "hoard", 3)
    claim = kube.find(k.PVCS, "my-precious", namespace)
    assert claim is not None, "the operator deleted a claim it never made"
    assert not claim["metadata"].get("deletionTimestamp"), "the operator deleted a claim it never made"
    assert int(status_of(kube, namespace, "hoard").get("lastSerial") or 0) < 97, "a foreign label moved the serials"

    def warned() -> list[Obj]:
        return [
            e
            for e in kube.items(k.EVENTS, namespace)
            if e["involvedObject"].get("name") == "hoard"
            and e.get("reason") == "ForeignObject"
            and e.get("type") == "Warning"
            and "my-precious" in (e.get("message") or "")
        ]

    wait_for(warned, "a ForeignObject Warning naming my-precious", timeout=15)
    foreign = condition(kube.get(k.STORES, "hoard", namespace), "ForeignObjects")
    assert foreign.get("status") == "True", foreign
    assert "my-precious" in foreign["message"]


# ------------------------------------------------------------------------------------------------
# 3. A forged VolumeSnapshot never seeds a member


def test_a_forged_snapshot_never_seeds_a_member(
    operator: Operator, kube: Kube, namespace: str, user: Kube, sim: SimulatorHandle
) -> None:
    user.create(k.STORES, store("ledger", snapshots={"interval": "1h"}, recovery=FAST), namespace)
    wait_ready(kube, namespace, "ledger", 3)
    real = wait_for(lambda: ready_snapshots(kube, namespace, "ledger"), "a real ready snapshot", timeout=30)[0]
    # The user's own volume, with data of their own, snapshotted under the store's labels.
    user.create(k.PVCS, user_claim("bait"), namespace)
    user.create(k.PODS, user_pod("bait-writer", {"app": "bait"}, claim="bait"), namespace)
    wait_for(lambda: sim.volume_of(namespace, "bait"), "the bait claim bound", timeout=30)
    sim.write(namespace, "bait", seq=666, size=666_000)
    forged = "ledger-99991231-235959"  # sorts after every snapshot the store takes
    user.create(
        k.SNAPSHOTS,
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": forged, "labels": dict(real["metadata"]["labels"])},
            "spec": {"source": {"persistentVolumeClaimName": "bait"}},
        },
        namespace,
    )
    wait_for(
        lambda: (user.get(k.SNAPSHOTS, forged, namespace).get("status") or {}).get("readyToUse"),
        "the forged snapshot ready to use",
        timeout=30,
    )
    assert sim.snapshot_data(namespace, forged)["seq"] == 666
    sim.lose_volume(namespace, "ledger-2")
    obj = wait_for(lambda: recovered(kube, namespace, "ledger"), "ledger-2 replaced", timeout=60)
    replacement = obj["status"]["lastRecovery"]["replacement"]
    claim = kube.get(k.PVCS, replacement, namespace)
    source = (claim["spec"].get("dataSource") or {}).get("name")
    assert source != forged, f"{replacement} was restored from the user's forged snapshot"
    assert (claim["metadata"].get("annotations") or {}).get(names.SEEDED_FROM_ANNOTATION) != forged
    assert sim.read(namespace, replacement)["seq"] != 666, f"{replacement} holds the user's data"


# ------------------------------------------------------------------------------------------------
# 4. Two stores never fight over one Service


def test_two_stores_never_fight_over_one_service(operator: Operator, kube: Kube, namespace: str, user: Kube) -> None:
    user.create(k.STORES, store("alpha"), namespace)  # its headless Service is alpha-peers
    wait_ready(kube, namespace, "alpha", 3)
    watcher = Watcher(kube, k.SERVICES, namespace, limit=25)
    first = next(s for s in watcher.initial if s["metadata"]["name"] == "alpha-peers")
    assert first["spec"]["selector"] == {names.STORE_LABEL: "alpha"}
    user.create(k.STORES, store("alpha-peers"), namespace)  # its client Service would be alpha-peers
    passes(operator, kube, namespace, "alpha-peers", 3)
    passes(operator, kube, namespace, "alpha", 2)
    events = watcher.run_out()  # ~15 s and more after both stores exist
    selectors = [first["spec"]["selector"]]
    for kind, service in events:
        if service["metadata"]["name"] != "alpha-peers":
            continue
        now = None if kind == "DELETED" else service["spec"].get("selector")
        if now != selectors[-1]:
            selectors.append(now)
    assert len(selectors) == 1, f"Service alpha-peers changed hands {len(selectors) - 1} time(s): {selectors}"
    assert kube.get(k.SERVICES, "alpha-peers", namespace)["spec"]["selector"] == {names.STORE_LABEL: "alpha"}
    blocked = stalled(kube, namespace, "alpha-peers", timeout=15)
    assert blocked["reason"] == "NameCollision", blocked
    assert "Service alpha-peers" in blocked["message"], blocked
    assert re.search(r"(?<![-\w])alpha(?![-\w])", blocked["message"]), f"the owner is not named: {blocked}"


# ------------------------------------------------------------------------------------------------
# 5. A user-made pod labelled as a member neither freezes nor subverts a store


def test_a_look_alike_pod_neither_freezes_nor_subverts_the_store(
    operator: Operator, kube: Kube, namespace: str, user: Kube
) -> None:
    user.create(k.STORES, store("victim"), namespace)
    wait_ready(kube, namespace, "victim", 3)
    claims = {n: c["metadata"]["uid"] for n, c in live_claims(kube, namespace, "victim").items()}
    pods = sorted(owned_pods(kube, namespace, "victim"))
    serial = status_of(kube, namespace, "victim")["lastSerial"]
    assert sorted(claims) == pods == ["victim-1", "victim-2", "victim-3"] and serial == 3
    look_alike = {names.STORE_LABEL: "victim", names.MEMBER_LABEL: "victim-99"}
    user.create(k.PODS, user_pod("innocent", look_alike), namespace)
    try:
        passes(operator, kube, namespace, "victim", 3)
    except TimeoutError as error:
        pytest.fail(f"the store froze once a look-alike pod appeared (no reconcile pass completed): {error}")
    innocent = kube.find(k.PODS, "innocent", namespace)
    assert innocent is not None and not innocent["metadata"].get("deletionTimestamp"), "the user's pod was deleted"
    # The store is not frozen: a spec edit is observed (its status is still written).
    edited = user.patch(k.STORES, "victim", {"spec": {"disruptionBudget": {"maxUnavailable": 0}}}, namespace)
    generation = edited["metadata"]["generation"]
    wait_for(
        lambda: status_of(kube, namespace, "victim").get("observedGeneration") == generation,
        f"observedGeneration {generation}",
        timeout=30,
    )
    when_condition(
        kube,
        namespace,
        "victim",
        "ForeignObjects",
        lambda c: c["status"] == "True" and "innocent" in c["message"],
        "ForeignObjects naming innocent",
        timeout=15,
    )
    # With a zone label too, the look-alike is still nobody's member.
    user.patch(k.PODS, "innocent", {"metadata": {"labels": {names.ZONE_LABEL: "zone-a"}}}, namespace)
    passes(operator, kube, namespace, "victim", 3)
    now = {n: c["metadata"]["uid"] for n, c in live_claims(kube, namespace, "victim").items()}
    assert now == claims, f"members changed for a look-alike pod: {sorted(now)}"
    assert sorted(owned_pods(kube, namespace, "victim")) == pods
    assert status_of(kube, namespace, "victim")["lastSerial"] == serial, "a replacement was created"
    assert kube.find(k.PODS, "innocent", namespace) is not None
    # A claim labelled as a future member is never mounted by the store's pods.
    future = {names.STORE_LABEL: "victim", names.MEMBER_LABEL: "victim-100", names.ZONE_LABEL: "zone-a"}
    user.create(k.PVCS, user_claim("victim-100", future), namespace)
    user.patch(k.STORES, "victim", {"spec": {"replicas": 4}}, namespace)
    wait_ready(kube, namespace, "victim", 4, timeout=60)
    mounted = {name: data_claim(pod) for name, pod in owned_pods(kube, namespace, "victim").items()}
    subverted = {name: claim for name, claim in mounted.items() if claim in {"victim-100"}}
    assert not subverted, f"the store's pods mount the user's claims: {subverted}"
    assert len(mounted) == 4
    claim = kube.find(k.PVCS, "victim-100", namespace)
    assert claim is not None and not claim["metadata"].get("deletionTimestamp")


# ------------------------------------------------------------------------------------------------
# 6. Shrinking zones converges; zones without nodes stall


def test_shrinking_zones_moves_members_without_losing_quorum(
    operator: Operator, kube: Kube, namespace: str, user: Kube
) -> None:
    user.create(k.STORES, store("nomad", zones=["zone-a", "zone-b", "zone-c"]), namespace)
    wait_ready(kube, namespace, "nomad", 3)
    watcher = Watcher(kube, k.PODS, namespace, selector=f"{names.STORE_LABEL}=nomad", limit=90)
    try:
        user.patch(k.STORES, "nomad", {"spec": {"zones": ["zone-a", "zone-b"]}}, namespace)

        def moved() -> Obj | None:
            obj = kube.get(k.STORES, "nomad", namespace)
            live = live_claims(kube, namespace, "nomad")
            pods = [
                p
                for p in member_pods(kube, namespace, "nomad")
                if (p["metadata"].get("labels") or {}).get(names.RETIRED_LABEL) != "true"
            ]
            zones = [c["metadata"]["labels"][names.ZONE_LABEL] for c in live.values()]
            zones += [p["metadata"]["labels"][names.ZONE_LABEL] for p in pods]
            done = (
                len(live) == 3
                and "zone-c" not in zones
                and condition(obj, "Ready").get("status") == "True"
                and (obj.get("status") or {}).get("readyReplicas") == 3
                and condition(obj, "ZonesBalanced").get("status") == "True"
            )
            return obj if done else None

        wait_for(moved, "nomad out of zone-c, 3/3 Ready, ZonesBalanced", timeout=60)
    finally:
        events = watcher.stop()

    lowest = lowest_ready(watcher.initial, events)
    assert lowest >= 3, f"ready members dipped to {lowest} while moving out of zone-c"


def test_zones_without_nodes_stall_and_change_nothing(
    operator: Operator, kube: Kube, namespace: str, user: Kube
) -> None:
    user.create(k.STORES, store("astray"), namespace)
    wait_ready(kube, namespace, "astray", 3)
    before = {c["metadata"]["name"]: c["metadata"]["uid"] for c in live_claims(kube, namespace, "astray").values()}
    user.patch(k.STORES, "astray", {"spec": {"zones": ["zone-x"]}}, namespace)
    blocked = stalled(kube, namespace, "astray", timeout=30)
    assert "zone-x" in blocked["message"], blocked
    passes(operator, kube, namespace, "astray", 3)
    claims = member_claims(kube, namespace, "astray")
    assert {c["metadata"]["name"]: c["metadata"]["uid"] for c in claims} == before, "a member was created or retired"
    assert all((c["metadata"].get("labels") or {}).get(names.RETIRED_LABEL) != "true" for c in claims)


# ------------------------------------------------------------------------------------------------
# 7. Requests that can never succeed end Stalled


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        pytest.param({"resources": {"limits": {"cpu": "lots"}}}, "quantities must match", id="bad-quantity"),
        pytest.param({"serviceAccountName": "nope"}, "nope", id="missing-service-account"),
    ],
)
def test_a_pod_the_api_server_refuses_ends_stalled_with_its_reason(
    operator: Operator, kube: Kube, namespace: str, user: Kube, change: Obj, refusal: str
) -> None:
    body = store("refused")
    pod_spec = body["spec"]["template"]["spec"]
    if "resources" in change:
        pod_spec["containers"][0].update(change)
    else:
        pod_spec.update(change)
    user.create(k.STORES, body, namespace)
    blocked = stalled(kube, namespace, "refused", timeout=60)
    assert refusal in blocked["message"], blocked


def test_claims_that_never_bind_end_stalled_past_the_progress_deadline(
    operator: Operator, kube: Kube, namespace: str, user: Kube
) -> None:
    user.create(
        k.STORES,
        store("unbound", storage={"size": "1Gi", "storageClassName": "no-such-class"}, updates=STUCK_UPDATES),
        namespace,
    )
    blocked = stalled(kube, namespace, "unbound", timeout=40)
    assert blocked["reason"] == "ProgressDeadlineExceeded", blocked
    stuck = [f"unbound-{i}" for i in (1, 2, 3)]
    assert any(re.search(rf"\b{m}\b", blocked["message"]) for m in stuck), f"no stuck member named: {blocked}"


# ------------------------------------------------------------------------------------------------
# 8. A member that never started does not block the store


def test_members_that_never_started_are_retired_first(
    operator: Operator, kube: Kube, namespace: str, user: Kube
) -> None:
    user.create(k.STORES, store("grow"), namespace)
    wait_ready(kube, namespace, "grow", 3)
    originals = {n: c["metadata"]["uid"] for n, c in live_claims(kube, namespace, "grow").items()}
    user.patch(
        k.STORES,
        "grow",
        {"spec": {"replicas": 5, "storage": {"storageClassName": "no-such-class"}, "updates": STUCK_UPDATES}},
        namespace,
    )

    def two_new() -> list[str] | None:
        found = sorted(set(live_claims(kube, namespace, "grow")) - set(originals))
        return found if len(found) == 2 else None

    newcomers = wait_for(two_new, "two new members", timeout=30)
    assert all(kube.get(k.PVCS, n, namespace)["status"].get("phase") == "Pending" for n in newcomers)
    user.patch(k.STORES, "grow", {"spec": {"replicas": 3, "storage": {"storageClassName": None}}}, namespace)

    def back() -> bool:
        live = live_claims(kube, namespace, "grow")
        obj = kube.get(k.STORES, "grow", namespace)
        return (
            sorted(live) == sorted(originals)
            and condition(obj, "Ready").get("status") == "True"
            and (obj.get("status") or {}).get("readyReplicas") == 3
        )

    wait_for(back, "grow back to its 3 original members, 3/3 Ready", timeout=60)
    claims = {c["metadata"]["name"]: c for c in member_claims(kube, namespace, "grow")}
    for name, uid in originals.items():
        assert claims[name]["metadata"]["uid"] == uid
        assert claims[name]["metadata"]["labels"].get(names.RETIRED_LABEL) != "true", f"{name} was retired"
    for name in newcomers:
        assert name not in claims or claims[name]["metadata"]["labels"].get(names.RETIRED_LABEL) == "true"


# ------------------------------------------------------------------------------------------------
# 9. Storage edits do not drift silently


def test_storage_edits_are_applied_or_reported(operator: Operator, kube: Kube, namespace: str, user: Kube) -> None:
    user.create(k.STORES, store("sized"), namespace)
    wait_ready(kube, namespace, "sized", 3)
    claims = live_claims(kube, namespace, "sized")
    class_name = next(iter(claims.values()))["spec"]["storageClassName"]
    expandable = bool(kube.get(k.STORAGECLASSES, class_name).get("allowVolumeExpansion"))
    user.patch(k.STORES, "sized", {"spec": {"storage": {"size": "2Gi"}}}, namespace)
    if expandable:

        def expanded() -> bool:
            found = live_claims(kube, namespace, "sized").values()
            return len(found) == 3 and all(c["spec"]["resources"]["requests"]["storage"] == "2Gi" for c in found)

        wait_for(expanded, f"every claim expanded to 2Gi ({class_name} allows expansion)", timeout=30)
    else:
        when_condition(
            kube,
            namespace,
            "sized",
            "VolumesMatchSpec",
            lambda c: c["status"] == "False" and "spec.storage.size" in c["message"],
            "VolumesMatchSpec False naming spec.storage.size",
        )
    user.patch(k.STORES, "sized", {"spec": {"storage": {"storageClassName": "other-class"}}}, namespace)
    when_condition(
        kube,
        namespace,
        "sized",
        "VolumesMatchSpec",
        lambda c: c["status"] == "False" and "spec.storage.storageClassName" in c["message"],
        "VolumesMatchSpec False naming spec.storage.storageClassName",
    )


# ------------------------------------------------------------------------------------------------
# 10. Every quantity the API server accepts is accepted


def test_an_exbibyte_volume_is_a_valid_spec(operator: Operator, kube: Kube, namespace: str, user: Kube) -> None:
    created = user.create(k.STORES, store("huge", storage={"size": "1Ei"}), namespace)
    generation = created["metadata"]["generation"]
    status = wait_for(
        lambda: (s := status_of(kube, namespace, "huge")).get("observedGeneration") == generation and s,
        "huge's spec judged",
        timeout=30,
    )
    blocked = condition(kube.get(k.STORES, "huge", namespace), "Stalled")
    refused = status.get("phase") == "Invalid" or blocked.get("status") == "True"
    assert not refused, f"storage.size 1Ei refused: {blocked.get('message')}"
