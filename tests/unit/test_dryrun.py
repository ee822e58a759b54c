"""The dry run (``python -m phalanx plan``) against a fake API server: it reads with GETs only (lists
and gets, selected as the watch cache selects), makes no Actor, refuses an invalid spec with the
operator's own Stalled message, and reports the operator's plan as text and as JSON."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml

from phalanx import build, dryrun, names
from phalanx import kube as k
from phalanx.act import Actor
from phalanx.kube import Resource
from phalanx.models import ReplicatedStoreSpec, ReplicatedStoreStatus
from phalanx.plan import CreateMember, EnsureChild, Plan, Snapshot, plan
from phalanx.reconcile import parse
from tests.unit.test_plan import NOW
from tests.unit.world import STORE, empty_world, make_ready, observed, owned_record, with_members

Obj = dict[str, Any]
SELECTED = f"{names.STORE_LABEL}={STORE.name}"
KINDS_LISTED = (k.PODS, k.PVCS, k.SNAPSHOTS, k.SERVICES, k.PDB_V1BETA1, k.NODES, k.PVS, k.STORES)


class Answer:
    """What the wire returns: a status code and a body."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.data = json.dumps(body).encode()


class FakeApiServer:
    """The wire under a real ``Kube``: every request recorded as (method, path, query), GETs answered
    from objects kept by collection path (label selectors honoured), ``/apis/<group>/<version>``
    served or not as told. Below the client, so whichever Kube method the dry run calls, what would
    reach the API server is in ``requests``; anything but a GET is recorded and answered, for the
    test to see."""

    host = "https://fake.invalid"

    def __init__(self, served: frozenset[str] = frozenset()) -> None:
        self.served = served
        self.objects: dict[str, list[Obj]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.configuration = self  # what Kube reads of an ApiClient: host, auth_settings, the pool
        self.rest_client = self
        self.pool_manager = self
        self.collections = {res.plural for res in KINDS_LISTED}

    def auth_settings(self) -> dict[str, Any]:
        return {}

    def add(self, res: Resource, obj: Obj, namespace: str | None = STORE.namespace) -> None:
        kept = copy.deepcopy(obj)
        if res.namespaced:
            kept["metadata"]["namespace"] = namespace
        self.objects.setdefault(res.path(namespace if res.namespaced else None), []).append(kept)

    def request(self, method: str, url: str, **options: Any) -> Answer:
        parts = urlsplit(url)
        path, query = parts.path, dict(parse_qsl(parts.query))
        self.requests.append((method, path, query))
        if method != "GET":
            return Answer(200, {})
        segments = path.strip("/").split("/")
        if segments[0] == "apis" and len(segments) == 3:  # discovery of a group version
            gv = "/".join(segments[1:])
            return Answer(200, {"groupVersion": gv}) if gv in self.served else Answer(404, {"reason": "NotFound"})
        if segments[-1] in self.collections:
            items = [o for o in self.objects.get(path, []) if selected(o, query.get("labelSelector"))]
            return Answer(200, {"kind": "List", "metadata": {"resourceVersion": "7"}, "items": items})
        parent, _, name = path.rpartition("/")
        found = next((o for o in self.objects.get(parent, []) if o["metadata"]["name"] == name), None)
        return Answer(200, found) if found is not None else Answer(404, {"reason": "NotFound", "message": name})


def client_of(server: FakeApiServer) -> dryrun.ReadOnlyKube:
    """The dry run's own read-only client, on the fake wire."""
    return dryrun.ReadOnlyKube(server)  # type: ignore[arg-type]


def selected(obj: Obj, selector: str | None) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in (selector or "").split(","):
        key, equals, value = term.partition("=")
        if term and (key not in labels or (equals and labels[key] != value)):
            return False
    return True


def spec_wire(replicas: int, **extra: Any) -> Obj:
    return {
        "replicas": replicas,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "store",
                        "image": "example/store:1.0",
                        "volumeMounts": [{"name": "data", "mountPath": "/d"}],
                    }
                ]
            }
        },
        "storage": {"size": "1Gi"},
        **extra,
    }


def manifest(replicas: int, name: str = STORE.name, **extra: Any) -> Obj:
    return {
        "apiVersion": "phalanx.dev/v1alpha1",
        "kind": "ReplicatedStore",
        "metadata": {"name": name, "namespace": STORE.namespace},
        "spec": spec_wire(replicas, **extra),
    }


def cluster_of_three() -> FakeApiServer:
    """A store of 3, Ready: its members on a node of each zone, volumes pinned, Services and budget
    in place; status as the operator left it (``owned``, ``lastSerial``)."""
    server = FakeApiServer()
    world = make_ready(with_members(empty_world(), (1, "zone-a"), (2, "zone-b"), (3, "zone-c")))
    spec = ReplicatedStoreSpec.model_validate(spec_wire(3))
    status = {"owned": owned_record(world), "lastSerial": 3}
    meta = {"name": STORE.name, "uid": STORE.uid, "generation": 4, "resourceVersion": "42"}
    server.add(k.STORES, {"metadata": meta, "spec": spec_wire(3), "status": status})
    for node in world.nodes:
        server.add(k.NODES, node)
    for pod in world.pods:
        server.add(k.PODS, pod)
    for claim in world.claims:
        server.add(k.PVCS, claim)
        volume = claim["spec"]["volumeName"]
        server.add(k.PVS, {"metadata": {"name": volume}, "spec": {"persistentVolumeReclaimPolicy": "Retain"}})
    server.add(k.SERVICES, build.peers_service(STORE, spec))
    server.add(k.PDB_V1BETA1, build.disruption_budget(STORE, spec, "policy/v1beta1"))
    return server


def test_the_dry_run_reads_with_gets_only_as_the_watch_cache_selects_and_makes_no_actor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_actor(*_: Any, **__: Any) -> None:
        raise AssertionError("the dry run made something that writes")

    monkeypatch.setattr(Actor, "__init__", no_actor)
    server = cluster_of_three()
    found = dryrun.preview(manifest(5), client_of(server), STORE.namespace, NOW)
    assert found.exists and found.store == STORE and found.plan is not None
    assert [(type(a).__name__, getattr(a, "member", None)) for a in found.plan.actions] == [
        ("CreateMember", "orders-4"),
        ("CreateMember", "orders-5"),
    ]
    assert {method for method, _, _ in server.requests} == {"GET"}
    reads = {(path, query.get("labelSelector")) for _, path, query in server.requests}
    namespaced = (k.PODS, k.PVCS, k.SNAPSHOTS, k.SERVICES, k.PDB_V1BETA1)  # policy/v1 is not served here
    assert reads == {
        (k.STORES.path(STORE.namespace, STORE.name), None),
        ("/apis/policy/v1", None),
        *((res.path(STORE.namespace), SELECTED) for res in namespaced),
        (k.PODS.path(STORE.namespace), f"{names.DRILL_OF_LABEL}={STORE.name}"),  # restore drills' pods
        (k.NODES.path(), None),
        (k.PVS.path(), None),
    }


def test_the_read_only_client_refuses_every_write_before_it_is_sent() -> None:
    server = cluster_of_three()
    client = client_of(server)
    body = {"metadata": {"name": "x"}}
    writes: list[Callable[[], Any]] = [
        lambda: client.create(k.PODS, body, STORE.namespace),
        lambda: client.patch(k.STORES, STORE.name, {"status": {}}, STORE.namespace, sub="status"),
        lambda: client.delete(k.PVCS, "orders-1", STORE.namespace),
        lambda: client.replace(k.STORES, {"metadata": {"name": STORE.name, "namespace": STORE.namespace}}),
    ]
    for write in writes:
        with pytest.raises(dryrun.ReadOnlyError):
            write()
    assert server.requests == []
    assert client.get(k.STORES, STORE.name, STORE.namespace)["metadata"]["uid"] == STORE.uid  # reads go through


def test_a_store_that_does_not_exist_yet_is_planned_as_new_under_a_placeholder_uid() -> None:
    server = cluster_of_three()
    found = dryrun.preview(manifest(3, name="fresh"), client_of(server), STORE.namespace, NOW)
    assert not found.exists and found.store.uid == dryrun.PLACEHOLDER_UID and found.generation == 1
    assert found.plan is not None
    created = [a.member for a in found.plan.actions if isinstance(a, CreateMember)]
    assert created == ["fresh-1", "fresh-2", "fresh-3"]  # another store's members are not its own
    assert {a.child for a in found.plan.actions if isinstance(a, EnsureChild)} == {"peers-service", "disruption-budget"}
    text = dryrun.render_text(dryrun.report(found))
    assert "does not exist yet" in text and dryrun.PLACEHOLDER_UID in text


def test_the_generation_moves_only_when_the_spec_does() -> None:
    live = {"metadata": {"name": STORE.name, "uid": STORE.uid, "generation": 4}, "spec": spec_wire(3)}
    stored_with_defaults = {**live, "spec": ReplicatedStoreSpec.model_validate(spec_wire(3)).to_wire()}
    assert dryrun.applied(manifest(3), stored_with_defaults, STORE.namespace)["metadata"]["generation"] == 4
    assert dryrun.applied(manifest(5), live, STORE.namespace)["metadata"]["generation"] == 5


def test_the_manifests_annotations_are_applied_over_the_stored_ones() -> None:
    live = {"metadata": {"name": STORE.name, "annotations": {"a": "1", names.SNAPSHOT_REQUEST: "old"}}}
    wanted = manifest(3)
    wanted["metadata"]["annotations"] = {names.SNAPSHOT_REQUEST: "now"}
    body = dryrun.applied(wanted, live, STORE.namespace)
    assert body["metadata"]["annotations"] == {"a": "1", names.SNAPSHOT_REQUEST: "now"}


def a_plan() -> Plan:
    """The operator's plan for a Ready store of 3 asked for 5, with a snapshot after."""
    world = make_ready(with_members(empty_world(), (1, "zone-a"), (2, "zone-b"), (3, "zone-c")))
    spec = ReplicatedStoreSpec.model_validate(spec_wire(5))
    decided = plan(spec, observed(world, {"lastSerial": 3}), NOW, revision="r1")
    snapshot = Snapshot("orders-1", "zone-a", "orders-snap-1", "interval passed", request="token")
    return replace(decided, actions=(*decided.actions, snapshot))


def preview_of(plan_: Plan) -> dryrun.Preview:
    return dryrun.Preview(STORE, True, 5, plan_)


def test_the_text_report_lists_actions_in_order_with_zone_and_why_then_notes_and_status() -> None:
    decided = a_plan()
    text = dryrun.render_text(dryrun.report(preview_of(decided)))
    lines = text.splitlines()
    assert lines[0] == "dry run: nothing was written"
    creates = [a for a in decided.actions if isinstance(a, CreateMember)]
    assert len(creates) == 2
    for action in creates:
        assert f"CreateMember {action.member} in {action.zone}: {action.why}" in text
    assert "Snapshot orders-1 in zone-a [name=orders-snap-1, request=token]: interval passed" in text
    numbered = [line.split(". ", 1)[1].split(" ")[0] for line in lines if line.startswith("  ") and ". " in line]
    assert numbered == [type(a).__name__ for a in decided.actions]  # in the plan's order
    assert decided.status.phase is not None and f"phase: {decided.status.phase.value}" in text
    assert "condition Ready=False" in text and "condition Stalled" not in text  # only what is not at rest


def test_the_rollout_is_printed_with_whatever_fields_it_has() -> None:
    decided = a_plan()
    at_rest = replace(decided, status=decided.status.model_copy(update={"rollout": None}))
    assert "rollout" not in dryrun.report(preview_of(at_rest))["status"]  # none in flight: none printed
    rollout = ReplicatedStoreStatus.model_validate({"rollout": {"zone": "zone-b"}}).rollout
    rolling = replace(decided, status=decided.status.model_copy(update={"rollout": rollout}))
    data = dryrun.report(preview_of(rolling))
    assert (
        data["status"]["rollout"] == rolling.status.model_dump(mode="json", by_alias=True, exclude_none=True)["rollout"]
    )
    assert "  rollout: zone=zone-b" in dryrun.render_text(data)


def test_the_json_report_carries_the_same_as_the_text() -> None:
    decided = a_plan()
    data = json.loads(json.dumps(dryrun.report(preview_of(decided))))
    assert data["dryRun"] is True and data["written"] is False and data["headline"] == "dry run: nothing was written"
    assert [a["kind"] for a in data["actions"]] == [type(a).__name__ for a in decided.actions]
    for reported, action in zip(data["actions"], decided.actions, strict=True):
        target = getattr(action, "member", None) or getattr(action, "name", None)
        assert (reported["target"], reported["zone"], reported["why"]) == (
            target,
            getattr(action, "zone", None),
            action.why,
        )
    assert data["notes"] == list(decided.notes)
    assert data["status"]["lastSerial"] == 5 and data["requeueAfter"] == round(decided.requeue_after, 1)


def write(tmp_path: Path, body: Obj) -> str:
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def test_an_invalid_spec_exits_2_with_the_operators_stalled_message_and_reads_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_cluster(kubeconfig: str | None) -> Any:
        raise AssertionError("an invalid spec is refused before the cluster is read")

    monkeypatch.setattr(dryrun, "connect", no_cluster)
    bad = manifest(3, snapshots={"interval": "1h", "maxAge": "30m"})
    spec, invalid = parse(bad, STORE.name)
    assert spec is None and invalid is not None
    stalled = plan(None, observed(empty_world()), NOW, invalid=invalid).status  # what the operator writes
    message = next(c.message for c in stalled.conditions if c.type == "Stalled")
    assert dryrun.main(["-f", write(tmp_path, bad)]) == dryrun.EXIT_INVALID == 2
    assert message in capsys.readouterr().err
    assert dryrun.main(["-f", write(tmp_path, bad), "-o", "json"]) == 2
    assert json.loads(capsys.readouterr().out)["invalid"]["message"] == message


def test_a_manifest_that_is_not_one_store_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump(manifest(3)) + "---\n" + yaml.safe_dump(manifest(3, name="other")))
    assert dryrun.main(["-f", str(two)]) == 2
    assert "expected one ReplicatedStore, found 2" in capsys.readouterr().err
    assert dryrun.main(["-f", write(tmp_path, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})]) == 2
    assert dryrun.main(["-f", write(tmp_path, manifest(3)), "--namespace", "elsewhere"]) == 2
    assert "does not match --namespace" in capsys.readouterr().err


def test_the_command_prints_the_plan_read_through_its_read_only_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = cluster_of_three()
    monkeypatch.setattr(dryrun, "connect", lambda kubeconfig: client_of(server))
    assert dryrun.main(["-f", write(tmp_path, manifest(5)), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(a["kind"], a["target"]) for a in data["actions"]] == [
        ("CreateMember", "orders-4"),
        ("CreateMember", "orders-5"),
    ]
    assert data["store"] == {
        "namespace": STORE.namespace,
        "name": STORE.name,
        "exists": True,
        "uid": STORE.uid,
        "placeholderUid": False,
        "generation": 5,
        "deleting": False,
    }
    assert dryrun.main(["-f", write(tmp_path, manifest(5))]) == 0
    assert capsys.readouterr().out.startswith("dry run: nothing was written\n")
    assert {method for method, _, _ in server.requests} == {"GET"}


def test_a_store_being_deleted_is_left_to_its_finalizer() -> None:
    server = cluster_of_three()
    [store] = server.objects[k.STORES.path(STORE.namespace)]
    store["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    found = dryrun.preview(manifest(5), client_of(server), STORE.namespace, NOW)
    assert found.plan is None
    data = dryrun.report(found)
    assert data["actions"] == [] and data["notes"] == [dryrun.DELETING]
    assert "actions: none" in dryrun.render_text(data)
