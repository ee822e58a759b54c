"""The chart's tenant roles, rendered: aggregated ClusterRoles that extend Kubernetes' view, edit and
admin roles to ReplicatedStores, and never to their status.

Status is Phalanx's record of what it made (status.owned): a tenant who could write it could make
Phalanx adopt, restore from or delete objects it did not make. So the exact permission set is pinned
here (a widened rule must be a deliberate change), and tests/integration/test_chart_tenants.py asks the
real RBAC authorizer.
"""

from __future__ import annotations

import pytest

from tests.unit.test_chart_render import AGGREGATE, Obj, grant, permissions, render

VIEW = grant("phalanx.dev", ["replicatedstores", "replicatedstores/status"], ["get", "list", "watch"])
EDIT = grant("phalanx.dev", ["replicatedstores"], ["create", "update", "patch", "delete"])


def tenant_roles(objs: list[Obj]) -> dict[str, Obj]:
    return {
        o["metadata"]["name"]: o
        for o in objs
        if o["kind"] == "ClusterRole" and any(k.startswith(AGGREGATE) for k in o["metadata"]["labels"])
    }


def aggregates_to(role: Obj) -> set[str]:
    return {
        k.removeprefix(AGGREGATE)
        for k, v in role["metadata"]["labels"].items()
        if k.startswith(AGGREGATE) and v == "true"
    }


def test_view_edit_and_admin_are_extended_to_stores() -> None:
    """`view` reads stores and their status; `edit` and `admin` also create, change and delete stores
    (and read, through the view role, which they aggregate too)."""
    roles = tenant_roles(render())
    assert set(roles) == {"phalanx-view", "phalanx-edit"}
    assert aggregates_to(roles["phalanx-view"]) == {"view", "edit", "admin"}
    assert permissions(roles["phalanx-view"]) == VIEW
    assert aggregates_to(roles["phalanx-edit"]) == {"edit", "admin"}
    assert permissions(roles["phalanx-edit"]) == EDIT
    for role in roles.values():
        assert role["metadata"]["labels"]["app.kubernetes.io/instance"] == "phalanx"
        assert "aggregationRule" not in role


def test_no_tenant_role_writes_status_or_finalizers() -> None:
    for role in tenant_roles(render()).values():
        for _, resource, verb in permissions(role):
            assert resource == "replicatedstores" or verb in ("get", "list", "watch"), (resource, verb)
            assert resource != "replicatedstores/finalizers"


@pytest.mark.parametrize("values", [["--set", "rbac.aggregateClusterRoles=false"], ["--set", "rbac.create=false"]])
def test_tenant_roles_can_be_left_out(values: list[str]) -> None:
    """For clusters that grant stores to tenants their own way (rbac.create=false: all RBAC is theirs)."""
    assert not tenant_roles(render(*values, "--set", "serviceAccount.name=ops"))


def test_names_follow_the_release() -> None:
    """Cluster-scoped: two releases must not collide."""
    assert set(tenant_roles(render("--set", "fullnameOverride=ops"))) == {"ops-view", "ops-edit"}
