"""act against a fake API server: a name someone else's object holds is never adopted, and what act
creates is recorded (status.owned) before anything is built on it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from phalanx import kube as k
from phalanx import names
from phalanx.act import Actor, Provenance, status_patch
from phalanx.kube import ApiError, Resource
from phalanx.plan import CreateMember, EnsureChild, Plan, RetireMember, Snapshot, plan
from tests.unit.test_plan import NOW, ZONES
from tests.unit.world import STORE, empty_world, observed, stamp, store_spec

Obj = dict[str, Any]


class FakeKube:
    """Objects by (plural, name); every call in ``calls``; creates of existing names answer 409."""

    def __init__(self, *existing: tuple[Resource, Obj]) -> None:
        self.objects: dict[tuple[str, str], Obj] = {(r.plural, o["metadata"]["name"]): o for r, o in existing}
        self.calls: list[tuple[str, str, str]] = []
        self.patches: list[tuple[str, str, Any]] = []
        self.made = 0

    def ensure(self, res: Resource, body: Obj, namespace: str | None = None) -> Obj | None:
        self.calls.append(("create", res.plural, body["metadata"]["name"]))
        key = (res.plural, body["metadata"]["name"])
        if key in self.objects:
            return None
        self.made += 1
        made = {**body, "metadata": {**body["metadata"], "uid": f"uid-{self.made}"}}
        self.objects[key] = made
        return made

    def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        found = self.objects.get((res.plural, name))
        if found is None:
            raise ApiError(404, json.dumps({"reason": "NotFound", "message": name}))
        return found

    def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, **_: Any) -> Obj:
        self.calls.append(("patch", res.plural, name))
        self.patches.append((res.plural, name, patch))
        return {}


def run(fake: FakeKube, *actions: Any, owned: dict[str, str] | None = None) -> tuple[list[Any], list[Any]]:
    writes: list[Any] = []
    provenance = Provenance(dict(owned or {}), {}, writes.append)
    actor = Actor(fake, k.PDB_V1)  # type: ignore[arg-type]
    plan = Plan(tuple(actions), None, 1.0)  # type: ignore[arg-type]
    return actor.execute(STORE, store_spec(3), plan, "rev", provenance), writes


def foreign_claim(name: str) -> tuple[Resource, Obj]:
    return k.PVCS, {"kind": "PersistentVolumeClaim", "metadata": {"name": name, "uid": "theirs"}}


def test_a_member_is_never_built_on_a_claim_someone_else_made() -> None:
    fake = FakeKube(foreign_claim("orders-4"))
    [outcome], writes = run(fake, CreateMember("orders-4", "zone-a", None, "scale"))
    assert outcome.code == 409 and outcome.refused
    assert "did not create" in str(outcome.error)
    assert ("create", "pods", "orders-4") not in fake.calls and writes == []


def test_a_created_claim_is_recorded_before_its_pod_is_made_and_a_rerun_is_idempotent() -> None:
    fake = FakeKube()
    [outcome], writes = run(fake, CreateMember("orders-4", "zone-a", None, "scale"))
    assert outcome.error is None
    assert writes == [{"claims": [{"name": "orders-4", "uid": "uid-1"}], "snapshots": []}]
    assert fake.calls == [("create", "persistentvolumeclaims", "orders-4"), ("create", "pods", "orders-4")]
    [again], _ = run(fake, CreateMember("orders-4", "zone-a", None, "scale"), owned={"orders-4": "uid-1"})
    assert again.error is None  # its own claim (on record) and its own pod (controlled by the store)


def test_a_child_whose_name_another_store_holds_is_never_patched() -> None:
    other = {
        "kind": "Service",
        "metadata": {
            "name": "orders-peers",
            "uid": "svc",
            "ownerReferences": [{"kind": "ReplicatedStore", "name": "orders-peers", "uid": "x", "controller": True}],
        },
    }
    fake = FakeKube((k.SERVICES, other))
    [outcome], _ = run(fake, EnsureChild("peers-service", "orders-peers", "missing"))
    assert outcome.refused and "ReplicatedStore orders-peers" in str(outcome.error)
    assert not any(call[0] == "patch" for call in fake.calls)


def test_a_snapshot_name_taken_by_a_stranger_fails_and_ours_is_recorded() -> None:
    stranger = {"kind": "VolumeSnapshot", "metadata": {"name": "orders-snap", "uid": "theirs"}}
    fake = FakeKube((k.SNAPSHOTS, stranger))
    [taken], writes = run(fake, Snapshot("orders-1", "zone-a", "orders-snap", "due"))
    assert taken.refused and writes == []
    [made], writes = run(FakeKube(), Snapshot("orders-1", "zone-a", "orders-new", "due"))
    assert made.error is None and writes[-1]["snapshots"] == [{"name": "orders-new", "uid": "uid-1"}]


# ------------------------------------------------------------------------------------------------
# The status patch: the difference, or nothing (a steady store writes nothing)


@pytest.mark.parametrize(
    ("current", "new", "patch"),
    [
        pytest.param({"phase": "Ready", "replicas": 3}, {"phase": "Ready", "replicas": 3}, None, id="equal-no-write"),
        pytest.param({}, {}, None, id="both-empty-no-write"),
        pytest.param(
            {"phase": "Pending", "replicas": 3},
            {"phase": "Ready", "replicas": 3},
            {"phase": "Ready"},
            id="changed-only",
        ),
        pytest.param({"phase": "Ready", "rollout": {"zone": "a"}}, {"phase": "Ready"}, {"rollout": None}, id="nulls"),
        pytest.param(
            {"phase": "Ready", "kopf": {"progress": {}}}, {"phase": "Ready"}, None, id="kopf-left-alone-when-absent"
        ),
        pytest.param(
            {"kopf": {"progress": {}}, "zones": [{"name": "a"}]},
            {"zones": [{"name": "b"}]},
            {"zones": [{"name": "b"}]},
            id="lists-replaced-whole-kopf-untouched",
        ),
        pytest.param(  # a merge patch keeps what it does not name: the old record's fields must be nulled
            {"lastRecovery": {"member": "o-1", "readyAt": "t1", "seconds": 2.0, "snapshot": "s1"}},
            {"lastRecovery": {"member": "o-2", "source": "Empty"}},
            {"lastRecovery": {"member": "o-2", "source": "Empty", "readyAt": None, "seconds": None, "snapshot": None}},
            id="nested-fields-of-a-new-record-nulled",
        ),
    ],
)
def test_status_patch_is_the_difference_or_nothing(
    current: dict[str, Any], new: dict[str, Any], patch: dict[str, Any] | None
) -> None:
    assert status_patch(current, new) == patch


def test_a_planned_status_never_carries_kopfs_bookkeeping() -> None:
    status = {"kopf": {"progress": {"run_store": {"started": stamp()}}}}
    wire = plan(store_spec(3), observed(empty_world(ZONES), status), NOW).status.to_wire()
    assert "kopf" not in wire
    patch = status_patch(status, wire)
    assert patch is not None and "kopf" not in patch


def test_a_broken_connection_fails_one_action_and_the_others_still_run_and_are_reported() -> None:
    class Flaky(FakeKube):
        def ensure(self, res: Resource, body: Obj, namespace: str | None = None) -> Obj | None:
            if body["metadata"]["name"] == "orders-4":
                raise ConnectionResetError("connection reset by peer")
            return super().ensure(res, body, namespace)

    fake = Flaky()
    outcomes, _ = run(
        fake, CreateMember("orders-4", "zone-a", None, "scale"), CreateMember("orders-5", "zone-b", None, "scale")
    )
    assert [(o.error is None, o.code) for o in outcomes] == [(False, None), (True, None)]
    assert "connection reset" in str(outcomes[0].error) and not outcomes[0].refused


def test_a_retirement_that_keeps_the_volume_dates_it() -> None:
    """spec.retiredVolumes counts from the date; a volume retired to be deleted at once needs none."""
    fake = FakeKube()
    [outcome], _ = run(fake, RetireMember("orders-2", None, "pvc-uid", delete_volume=False, why="lost"))
    assert outcome.error is None
    [(plural, name, patch)] = fake.patches
    assert (plural, name) == ("persistentvolumeclaims", "orders-2")
    assert patch["metadata"]["labels"] == {names.RETIRED_LABEL: "true"}
    dated = datetime.fromisoformat(patch["metadata"]["annotations"][names.RETIRED_AT_ANNOTATION])
    assert abs((dated - datetime.now(UTC)).total_seconds()) < 5
